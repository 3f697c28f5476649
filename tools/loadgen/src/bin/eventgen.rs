//! `eventgen`: writes realistic `POST /v1/events` bodies for `loadgen --bodies-file`, one
//! batch a line (NDJSON).
//!
//! Each client gets a history over the last 90 days: an insurance cover (some later cut, raised
//! or withdrawn), external scores, sales alerts, a few legal proceedings, and invoices issued
//! all along with their fate — paid on time, paid late after dunning letters, paid in two
//! parts, reduced by a credit note, or still unpaid. The histories of all clients are merged
//! in date order, as an ERP would send them, and cut into batches; each batch so spans
//! hundreds of clients. Ids carry `{round}`, which loadgen replaces by how many times the file
//! has been gone through, so event and invoice ids stay unique over a whole run. The output
//! depends only on the arguments (a fixed pseudo-random sequence).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(about = "Writes realistic client-event batches (NDJSON) for loadgen --bodies-file")]
struct Args {
    /// File of client ids, one a line (they must exist on the server).
    #[arg(long)]
    clients_file: PathBuf,
    /// Batches (lines) to write.
    #[arg(long, default_value_t = 200)]
    batches: usize,
    /// Events per batch.
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
    /// The day the histories end, YYYY-MM-DD (today: events may not be in the future).
    #[arg(long)]
    today: String,
    /// Seed of the pseudo-random sequence.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eventgen: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let today = parse_day(&args.today).ok_or("--today: expected YYYY-MM-DD")?;
    let clients: Vec<String> = std::fs::read_to_string(&args.clients_file)
        .map_err(|e| format!("{}: {e}", args.clients_file.display()))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if clients.is_empty() || args.batches == 0 || !(1..=1000).contains(&args.batch_size) {
        return Err("need clients, --batches >= 1 and --batch-size 1..1000".into());
    }
    let wanted = args.batches * args.batch_size;
    // A few more events than needed: the latest are cut off (not happened yet, as it were).
    let per_client = wanted.div_ceil(clients.len()) * 6 / 5 + 4;
    let mut events: Vec<Event> = Vec::with_capacity(wanted + clients.len() * 8);
    for (i, client) in clients.iter().enumerate() {
        let mut rng = Rng::new(args.seed ^ (i as u64).wrapping_mul(0x9E37_79B9));
        history(&mut events, &mut rng, client, today, per_client);
    }
    if events.len() < wanted {
        return Err(format!("only {} events generated", events.len()));
    }
    // Date order, as the ERP sends them; a client's own events keep their order.
    events.sort_by_key(|e| (e.at, e.client_rank, e.seq));
    events.truncate(wanted);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for batch in events.chunks(args.batch_size) {
        let mut line = String::with_capacity(batch.len() * 260);
        line.push_str("{\"events\":[");
        for (k, e) in batch.iter().enumerate() {
            if k > 0 {
                line.push(',');
            }
            line.push_str(&e.json);
        }
        line.push_str("]}\n");
        out.write_all(line.as_bytes()).map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())
}

/// One event: when it occurred (seconds since the epoch) and its JSON.
struct Event {
    at: i64,
    client_rank: u64,
    seq: u32,
    json: String,
}

struct Story<'a> {
    out: &'a mut Vec<Event>,
    client: &'a str,
    rank: u64,
    today: i64,
    seq: u32,
}

impl Story<'_> {
    /// Adds an event of `kind` on day `day` (days from the epoch) at a business hour.
    fn push(&mut self, rng: &mut Rng, day: i64, kind: &str, fields: &str) {
        if day > self.today {
            return;
        }
        let at = day * 86_400 + 7 * 3600 + rng.below(11 * 3600) as i64;
        self.seq += 1;
        let json = format!(
            r#"{{"event_id":"EV{{round}}-{}-{:05}","client_id":"{}","type":"{kind}","occurred_at":"{}",{fields}}}"#,
            self.client,
            self.seq,
            self.client,
            rfc3339(at)
        );
        self.out.push(Event {
            at,
            client_rank: self.rank,
            seq: self.seq,
            json,
        });
    }
}

const INSURERS: [&str; 3] = ["Allianz Trade", "Coface", "Atradius"];
const PROVIDERS: [&str; 3] = ["Ellisphere", "Altares", "Creditsafe"];
const NOTES: [(&str, &str); 6] = [
    (
        "negative",
        "Buyer asked to postpone the delivery and pay in three instalments.",
    ),
    (
        "negative",
        "Rumours of a lost major contract; payments slower this month.",
    ),
    (
        "negative",
        "Switched bank; the accountant did not answer our reminder.",
    ),
    (
        "positive",
        "New warehouse opened; the order book is full until spring.",
    ),
    (
        "positive",
        "Signed a framework contract with a national retailer.",
    ),
    (
        "positive",
        "Paid the disputed invoice after our visit; relationship good.",
    ),
];

/// One client's last 90 days: about `budget` events.
fn history(out: &mut Vec<Event>, rng: &mut Rng, client: &str, today: i64, budget: usize) {
    let mut s = Story {
        out,
        client,
        rank: rng.next(),
        today,
        seq: 0,
    };
    let insurer = INSURERS[rng.below(3) as usize];
    // Cover from 2 to 60 million: below some clients' limits (the limit is then cut).
    let cover = (2 + rng.below(59)) * 1_000_000;
    let valid = day_string(today + 180 + rng.below(365) as i64);
    s.push(
        rng,
        today - 90,
        "insurance_cover_changed",
        &format!(r#""insurer":"{insurer}","insured_amount":"{cover}.00","valid_until":"{valid}""#),
    );
    let change = rng.below(100);
    if change < 30 {
        let day = today - 60 + rng.below(55) as i64;
        let amount = if change < 5 {
            0
        } else {
            (1 + rng.below(60)) * 1_000_000
        };
        s.push(
            rng,
            day,
            "insurance_cover_changed",
            &format!(r#""insurer":"{insurer}","insured_amount":"{amount}.00""#),
        );
    }
    let provider = PROVIDERS[rng.below(3) as usize];
    for back in [85, 55, 25] {
        let day = today - back + rng.below(5) as i64;
        let fields = format!(
            r#""provider":"{provider}","score":{},"as_of":"{}""#,
            30 + rng.below(66),
            day_string(day)
        );
        s.push(rng, day, "external_score_updated", &fields);
    }
    for _ in 0..1 + rng.below(2) {
        let (sentiment, note) = NOTES[rng.below(NOTES.len() as u64) as usize];
        let day = today - 80 + rng.below(80) as i64;
        let fields = format!(r#""sentiment":"{sentiment}","note":"{note}""#);
        s.push(rng, day, "sales_alert", &fields);
    }
    if rng.below(100) == 0 {
        s.push(
            rng,
            today - 30,
            "legal_status_changed",
            r#""legal_status":"safeguard""#,
        );
        s.push(
            rng,
            today - 8,
            "legal_status_changed",
            r#""legal_status":"none""#,
        );
    }
    // About 2.2 events an invoice on average (issue, payments, dunning, credit notes).
    let invoices = (budget.saturating_sub(s.seq as usize) * 10)
        .div_ceil(22)
        .max(1);
    for k in 0..invoices {
        let inv = format!("F{{round}}-{client}-{k:04}");
        let issued = today - 85 + rng.below(84) as i64;
        let terms = [30, 45, 60][rng.below(3) as usize];
        let due = issued + terms;
        let amount = 30_000 + rng.below(6_000_000) as i64; // minor units: 300 to 60,300 EUR
        s.push(
            rng,
            issued,
            "invoice_issued",
            &format!(
                r#""invoice_id":"{inv}","amount":"{}","issued_on":"{}","due_on":"{}""#,
                money(amount),
                day_string(issued),
                day_string(due)
            ),
        );
        let pay = |s: &mut Story, rng: &mut Rng, day: i64, minor: i64| {
            s.push(
                rng,
                day,
                "payment_received",
                &format!(
                    r#""invoice_id":"{inv}","amount":"{}","received_on":"{}""#,
                    money(minor),
                    day_string(day)
                ),
            );
        };
        let dun = |s: &mut Story, rng: &mut Rng, until: i64| {
            for (level, after) in [(1, 7), (2, 21)] {
                if due + after < until {
                    s.push(
                        rng,
                        due + after,
                        "dunning_sent",
                        &format!(r#""invoice_id":"{inv}","level":{level}"#),
                    );
                }
            }
        };
        match rng.below(100) {
            0..55 => {
                let day = issued + 5 + rng.below(terms as u64 - 4) as i64;
                pay(&mut s, rng, day, amount);
            }
            55..75 => {
                let paid = due + 1 + rng.below(40) as i64;
                dun(&mut s, rng, paid);
                pay(&mut s, rng, paid, amount);
            }
            75..87 => {
                let first = amount * (40 + rng.below(31) as i64) / 100;
                let day = due - 5 + rng.below(8) as i64;
                pay(&mut s, rng, day, first);
                let second = due + 3 + rng.below(27) as i64;
                dun(&mut s, rng, second);
                pay(&mut s, rng, second, amount - first);
            }
            87..95 => {
                let credit = amount * (5 + rng.below(16) as i64) / 100;
                let day = issued + 2 + rng.below(8) as i64;
                let fields = format!(r#""invoice_id":"{inv}","amount":"{}""#, money(credit));
                s.push(rng, day, "credit_note_issued", &fields);
                let day = due - rng.below(10) as i64;
                pay(&mut s, rng, day, amount - credit);
            }
            _ => dun(&mut s, rng, today + 1),
        }
    }
}

fn money(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

/// Days from 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn parse_day(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (parts.next()??, parts.next()??, parts.next()??);
    ((1..=12).contains(&m) && (1..=31).contains(&d)).then(|| days_from_civil(y, m, d))
}

fn day_string(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

fn rfc3339(secs: i64) -> String {
    let (day, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let mut s = day_string(day);
    let _ = write!(
        s,
        "T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    );
    s
}

/// splitmix64: small, fast, reproducible.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        for text in ["1970-01-01", "2000-02-29", "2026-11-30", "2027-01-01"] {
            assert_eq!(day_string(parse_day(text).unwrap()), text);
        }
        assert_eq!(rfc3339(86_400 + 3661), "1970-01-02T01:01:01Z");
    }
}
