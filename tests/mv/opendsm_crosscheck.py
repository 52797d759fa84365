"""Fits OpenDSM's CalTRACK demand-response baseline (opendsm.drmeter.CaltrackDRModel) on the
series the oracle's regression was fitted on, and prints its predictions.

stdin: {"cases": [{"meter": [[unix start, Wh], ...] (any resolution, whole hours present or absent),
                   "temperature": [[unix hour start, deg F], ...] (hourly),
                   "reporting": [[unix hour start, deg F], ...] (at least 3 consecutive hours)}, ...]}
stdout: {"predicted": [[Wh per reporting hour, null where OpenDSM has none], ...]}, per case

Two of OpenDSM's habits are neutralised so both fit on the same hours (they are differences
by design, DISPATCHING.md): it drops the last baseline hour (its temperature features end
one hour early), so one extra hour is appended after the baseline; and it reads zero meter
values as missing, so the meter series must have none (the test's loads never are zero).
Timestamps are UTC, as the oracle's hours of the week are.
"""

import json
import sys
import warnings

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")  # pandas FutureWarnings from inside opendsm

from opendsm.drmeter import CaltrackDRBaselineData, CaltrackDRModel, CaltrackDRReportingData  # noqa: E402


def series(pairs, name):
    index = pd.to_datetime([p[0] for p in pairs], unit="s", utc=True)
    return pd.Series([float(p[1]) for p in pairs], index=index, name=name)


def predict(case):
    meter = series(case["meter"], "observed").resample("h").sum(min_count=1)
    if any(meter == 0):
        raise SystemExit("zero loads would be read as missing by OpenDSM")
    # The hour after the baseline, which OpenDSM drops.
    extra = meter.index[-1] + pd.Timedelta(hours=1)
    meter.loc[extra] = 1.0
    temperature = series(case["temperature"], "temperature")
    temperature.loc[extra] = 50.0
    temperature = temperature.reindex(meter.index)
    baseline = CaltrackDRBaselineData.from_series(meter, temperature, is_electricity_data=True)
    model = CaltrackDRModel().fit(baseline)
    reporting = CaltrackDRReportingData.from_series(None, series(case["reporting"], "temperature"), is_electricity_data=True)
    predicted = model.predict(reporting)["predicted"]
    return [None if np.isnan(v) else float(v) for v in predicted.values]


def main():
    cases = json.load(sys.stdin)["cases"]
    print(json.dumps({"predicted": [predict(case) for case in cases]}))


if __name__ == "__main__":
    main()
