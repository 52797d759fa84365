//! A utility's business logic on OpenLEADR's VTN, through OpenLEADR's own client
//! (`openleadr-client` 0.1.4, OpenADR 3.0.1). Prints JSON on stdout.
//!
//! ```text
//! openleadr-bl event <program name> <start RFC 3339> <interval duration> <kW>,<kW>,...
//!     a program (targets GROUP ovpp-fleet) and a DISPATCH_SETPOINT event in it, one interval per value
//!     -> {"program": id, "event": id}
//! openleadr-bl delete <event id>
//!     deletes the event -> {"deleted": id}
//! openleadr-bl reports <event id>
//!     the reports VENs posted on the event, as the client reads them -> [report, ...]
//! ```
//! Environment: VTN_URL (ending in `/`), BL_CLIENT_ID, BL_SECRET.

use openleadr_client::{Client, ClientCredentials};
use openleadr_wire::event::{EventInterval, EventType, EventValuesMap, Priority};
use openleadr_wire::interval::IntervalPeriod;
use openleadr_wire::program::ProgramContent;
use openleadr_wire::target::{TargetEntry, TargetMap, TargetType};
use openleadr_wire::values_map::Value;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn env(name: &str) -> Result<String> {
    std::env::var(name).map_err(|_| format!("set {name}").into())
}

#[tokio::main]
async fn main() -> Result<()> {
    let credentials = ClientCredentials::new(env("BL_CLIENT_ID")?, env("BL_SECRET")?);
    let bl = Client::with_url(env("VTN_URL")?.parse()?, Some(credentials));
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["event", program, start, duration, values] => {
            let group = || Some(TargetMap(vec![TargetEntry { label: TargetType::Group, values: vec!["ovpp-fleet".into()] }]));
            let mut content = ProgramContent::new(program.to_string());
            content.targets = group();
            let program = bl.create_program(content).await?;
            let mut period = IntervalPeriod::new(chrono::DateTime::parse_from_rfc3339(start)?.to_utc());
            period.duration = Some(duration.parse().map_err(|_| format!("duration {duration:?} is not ISO 8601"))?);
            let intervals = values
                .split(',')
                .enumerate()
                .map(|(i, kw)| {
                    let payload = EventValuesMap { value_type: EventType::DispatchSetpoint, values: vec![Value::Number(kw.parse().unwrap())] };
                    EventInterval::new(i as i32, vec![payload])
                })
                .collect();
            let mut event = program.new_event(intervals);
            event.event_name = Some("utility peak".into());
            event.priority = Priority::new(1);
            event.targets = group();
            event.interval_period = Some(period);
            let event = program.create_event(event).await?;
            println!("{}", serde_json::json!({"program": program.id(), "event": event.id()}));
        }
        ["delete", event] => {
            let deleted = bl.get_event_by_id(&event.parse()?).await?.delete().await?;
            println!("{}", serde_json::json!({"deleted": deleted.id}));
        }
        ["reports", event] => {
            let event = bl.get_event_by_id(&event.parse()?).await?;
            let reports: Vec<_> = event.get_report_list(None).await?.iter().map(|r| r.content().clone()).collect();
            println!("{}", serde_json::to_string(&reports)?);
        }
        _ => return Err("usage: openleadr-bl event <program> <start> <duration> <kW,...> | delete <event id> | reports <event id>".into()),
    }
    Ok(())
}
