#!/usr/bin/env bash
# Sets up the OpenADR peer the VEN test runs against (tests/e2e/tests/oracle/openadr.rs), none
# of it written here: OpenLEADR's VTN (crates.io openleadr-vtn 0.1.4, OpenADR 3.0.1; patched
# only to listen on the loopback address it is given instead of 0.0.0.0:3000), a business-logic
# tool on OpenLEADR's client (tests/openadr/openleadr-bl), and PostgreSQL 16, which that VTN
# needs (Debian 12 has 15), from PyPI's `pgserver` wheel. Built once per machine into the
# directory it prints (outside the clone; kept while this script and the tool are unchanged).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ "$(id -u)" = 0 ]; then
    # Not under /root: the PostgreSQL server runs as the `postgres` user and must reach it.
    dir=/var/cache/ovpp-openleadr
else
    dir="${XDG_CACHE_HOME:-$HOME/.cache}/ovpp-openleadr"
fi
stamp="$(cat "$0" "$here/openleadr-bl/Cargo.toml" "$here/openleadr-bl/Cargo.lock" "$here/openleadr-bl/src/main.rs" | sha256sum | cut -c1-16)"
if [ -e "$dir/ready-$stamp" ]; then
    echo "$dir"
    exit 0
fi
echo "tests/openadr/openleadr.sh: building OpenLEADR's VTN and client tool and fetching PostgreSQL 16 into $dir (once per machine, a few minutes)" >&2
rm -rf "$dir"
mkdir -p "$dir"
chmod 755 "$dir"

python3 -m venv "$dir/pg-venv"
"$dir/pg-venv/bin/pip" install --disable-pip-version-check -q pgserver==0.1.4 >&2
ln -s "$(echo "$dir"/pg-venv/lib/python3*/site-packages/pgserver/pginstall)" "$dir/pg16"
"$dir/pg16/bin/initdb" --version >&2

curl -sSfL https://static.crates.io/crates/openleadr-vtn/openleadr-vtn-0.1.4.crate | tar xz -C "$dir"
main="$dir/openleadr-vtn-0.1.4/src/main.rs"
grep -q 'let addr = "0.0.0.0:3000";' "$main"
sed -i 's|let addr = "0.0.0.0:3000";|let addr = std::env::var("OPENLEADR_LISTEN").unwrap_or_else(\|_\| "127.0.0.1:3000".into());|; s|TcpListener::bind(addr)|TcpListener::bind(\&addr)|' "$main"
export SQLX_OFFLINE=true CARGO_TARGET_DIR="$dir/target"
cargo install --quiet --debug --locked --path "$dir/openleadr-vtn-0.1.4" --root "$dir" >&2
cargo install --quiet --debug --locked --path "$here/openleadr-bl" --root "$dir" >&2
rm -rf "$dir/target"
touch "$dir/ready-$stamp"
echo "$dir"
