//! gen-data: writes realistic, deterministic input data of any size for every job
//! (`--seed` fixes every byte). Zipf-skewed products, sellers and urls, timestamps
//! spread over weeks, TSV and CLF access logs, ~50% duplicate crawl URLs, and, with
//! `--bad-rate`, a share of faulty lines of every kind the reader must quarantine.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::{Parser, ValueEnum};
use mrpipe::read::fields::{MICROS_PER_SEC, civil_from_days, format_timestamp, parse_timestamp};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Zipf};

/// What to generate.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// sales-rank input.
    Sales,
    /// spending transactions (+ sellers.tsv, overrides.tsv, incomes.tsv beside --out).
    Spending,
    /// hit-counts TSV access log.
    AccessTsv,
    /// hit-counts Combined Log Format access log.
    AccessClf,
    /// url-dedup crawl list.
    Urls,
}

/// Generate test and benchmark data for mrpipe's jobs.
#[derive(Parser, Debug)]
#[command(version, after_help = "Example: gen-data sales --rows 10000000 --seed 7 --out data/sales.tsv")]
struct Args {
    /// What to generate.
    kind: Kind,
    /// Number of lines to write.
    #[arg(long, default_value_t = 100_000)]
    rows: u64,
    /// Random seed; the same seed gives the same bytes.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Share of lines made faulty (0 to 1): wrong field counts, bad timestamps, money, quantities, invalid UTF-8.
    #[arg(long, default_value_t = 0.0)]
    bad_rate: f64,
    /// Last day of the timestamps (they spread over --days before it).
    #[arg(long, default_value = "2026-11-23")]
    end: String,
    /// Number of days the timestamps spread over.
    #[arg(long, default_value_t = 28)]
    days: u64,
    /// Output file (`-` for stdout).
    #[arg(long, default_value = "-")]
    out: PathBuf,
}

struct Gen {
    rng: ChaCha8Rng,
    start: i64,
    span: i64,
    bad_rate: f64,
}

const SEED_SELLERS: &[&str] = &[
    "Exxon",
    "Shell",
    "Chevron",
    "BP",
    "Safeway",
    "Whole Foods",
    "Trader Joe's",
    "Starbucks",
    "McDonald's",
    "Chipotle",
    "Amazon",
    "Target",
    "Walmart",
    "Best Buy",
    "IKEA",
    "Equity Residential",
    "AvalonBay",
    "Comcast",
    "PG&E",
    "Verizon",
    "Netflix",
    "Spotify",
    "Uber",
    "Lyft",
    "Delta",
    "Airbnb",
    "CVS",
    "Walgreens",
];
const CATEGORIES: &[&str] = &["food", "gas", "shopping", "housing", "travel", "health", "entertainment"];

impl Gen {
    fn timestamp(&mut self) -> String {
        let t = self.start + self.rng.random_range(0..self.span);
        match self.rng.random_range(0..20) {
            0 => format!("{}", t / MICROS_PER_SEC),
            1 => {
                let s = format_timestamp(t - t % MICROS_PER_SEC);
                format!("{} {}", &s[..10], &s[11..19])
            }
            _ => format_timestamp(t - t % MICROS_PER_SEC),
        }
    }

    fn money(&mut self, max_cents: u64) -> String {
        let c = self.rng.random_range(1..max_cents);
        format!("{}.{:02}", c / 100, c % 100)
    }

    fn zipf(&mut self, n: u64) -> u64 {
        // Zipf::new only fails for n < 1 or a negative exponent; both are constants here.
        let z = Zipf::new(n as f64, 1.07).expect("valid Zipf parameters");
        z.sample(&mut self.rng) as u64
    }

    /// Turns a good line into a faulty one of a random kind, now and then. `ts` and
    /// `money` are the indexes of the timestamp and money fields, where the line has them.
    fn maybe_break(&mut self, line: String, ts: Option<usize>, money: Option<usize>) -> Vec<u8> {
        if self.bad_rate <= 0.0 || !self.rng.random_bool(self.bad_rate.min(1.0)) {
            return line.into_bytes();
        }
        let mut fields: Vec<&str> = line.split('\t').collect();
        match self.rng.random_range(0..5) {
            0 if fields.len() > 1 => {
                fields.pop();
            }
            2 if ts.is_some() => fields[ts.unwrap_or(0)] = "2026-13-45T00:00:00Z",
            3 if money.is_some() => fields[money.unwrap_or(0)] = "12.345",
            4 => {
                let mut b = line.into_bytes();
                b.insert(b.len() / 2, 0xff);
                return b;
            }
            _ => fields.push("extra"),
        }
        fields.join("\t").into_bytes()
    }
}

fn main() {
    let args = Args::parse();
    if let Err(e) = generate(&args) {
        eprintln!("gen-data: error: {e}");
        std::process::exit(1);
    }
}

fn open(path: &Path) -> std::io::Result<Box<dyn Write>> {
    Ok(if path == Path::new("-") {
        Box::new(BufWriter::with_capacity(1 << 20, std::io::stdout().lock()))
    } else {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        Box::new(BufWriter::with_capacity(1 << 20, File::create(path)?))
    })
}

fn generate(args: &Args) -> std::io::Result<()> {
    let end = parse_timestamp(format!("{} 00:00:00", args.end).as_bytes())
        .ok_or_else(|| std::io::Error::other(format!("bad --end '{}'", args.end)))?;
    let span = (args.days.max(1) as i64) * 86_400 * MICROS_PER_SEC;
    let mut g = Gen { rng: ChaCha8Rng::seed_from_u64(args.seed), start: end - span, span, bad_rate: args.bad_rate };
    let mut out = open(&args.out)?;
    match args.kind {
        Kind::Sales => {
            writeln!(out, "timestamp\tproduct_id\tcategory_id\tquantity\ttotal_price\tseller_id\tbuyer_id")?;
            for _ in 0..args.rows {
                let product = g.zipf(100_000);
                let quantity = g.zipf(20);
                let price = g.money(20_000);
                let line = format!(
                    "{}\tp{product}\tc{}\t{quantity}\t{price}\ts{}\tb{}",
                    g.timestamp(),
                    product % 50,
                    g.zipf(5_000),
                    g.rng.random_range(0..1_000_000u32)
                );
                let line = g.maybe_break(line, Some(0), Some(4));
                out.write_all(&line)?;
                out.write_all(b"\n")?;
            }
        }
        Kind::Spending => {
            writeln!(out, "user_id\ttimestamp\tseller\tamount")?;
            for _ in 0..args.rows {
                let seller_rank = g.zipf(2_000) as usize;
                let seller =
                    SEED_SELLERS.get(seller_rank - 1).map_or_else(|| format!("Shop {seller_rank}"), |s| s.to_string());
                let line =
                    format!("u{}\t{}\t{seller}\t{}", g.rng.random_range(0..100_000u32), g.timestamp(), g.money(50_000));
                let line = g.maybe_break(line, Some(1), Some(3));
                out.write_all(&line)?;
                out.write_all(b"\n")?;
            }
            if args.out != Path::new("-") {
                write_spending_side_files(&mut g, args.out.parent().unwrap_or(Path::new(".")))?;
            }
        }
        Kind::AccessTsv | Kind::AccessClf => {
            if args.kind == Kind::AccessTsv {
                writeln!(out, "timestamp\tclient_ip\tmethod\turl\tstatus\tbytes")?;
            }
            for _ in 0..args.rows {
                let url = short_url(&mut g);
                let ip = format!("203.0.{}.{}", g.rng.random_range(0..256u32), g.rng.random_range(1..255u32));
                let (method, status) = match g.rng.random_range(0..20) {
                    0 => ("POST", 201),
                    1 => ("GET", 404),
                    2 => ("HEAD", 304),
                    _ => ("GET", 200),
                };
                let bytes = g.rng.random_range(0..100_000u32);
                let line = if args.kind == Kind::AccessTsv {
                    let ts = g.timestamp();
                    g.maybe_break(format!("{ts}\t{ip}\t{method}\t{url}\t{status}\t{bytes}"), Some(0), None)
                } else {
                    clf_line(&mut g, &ip, method, &url, status, bytes)
                };
                out.write_all(&line)?;
                out.write_all(b"\n")?;
            }
        }
        Kind::Urls => {
            writeln!(out, "url")?;
            let distinct = (args.rows / 2).max(1);
            for _ in 0..args.rows {
                let id = g.rng.random_range(0..distinct);
                let host = id % 997;
                let line = match id % 10 {
                    0 => format!("HTTP://Host{host}.Example.com:80/page/{id}#top"),
                    1 => format!("https://host{host}.example.com:443/page/{id}?"),
                    _ => format!("http://host{host}.example.com/page/{id}"),
                };
                let line = g.maybe_break(line, None, None);
                out.write_all(&line)?;
                out.write_all(b"\n")?;
            }
        }
    }
    out.flush()
}

/// A pastebin-style short url, Zipf-popular, sometimes with a query string.
fn short_url(g: &mut Gen) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    // Spread the popular small ids over the whole id space.
    let mut id = g.zipf(1_000_000).wrapping_mul(2_654_435_761) % 3_521_614_606_208;
    let mut s = String::from("/");
    for _ in 0..7 {
        s.push(ALPHABET[(id % 62) as usize] as char);
        id /= 62;
    }
    if g.rng.random_range(0..10) == 0 {
        s.push_str(&format!("?ref={}", g.rng.random_range(0..5u32)));
    }
    s
}

fn clf_line(g: &mut Gen, ip: &str, method: &str, url: &str, status: u32, bytes: u32) -> Vec<u8> {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    if g.bad_rate > 0.0 && g.rng.random_bool(g.bad_rate.min(1.0)) {
        return match g.rng.random_range(0..3) {
            0 => b"\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xfc\\x03\\x03".to_vec(),
            1 => format!("{ip} - - [20/Nov/2026:13:45:12 +0000] \"GET {url}").into_bytes(),
            _ => format!("{ip} - - [20/Nov/2026:13:45:12 +0000] \"-\" 400 0 \"-\" \"-\"").into_bytes(),
        };
    }
    let t = g.start + g.rng.random_range(0..g.span);
    let zone_hours = g.rng.random_range(-5i64..=5);
    let local = t / MICROS_PER_SEC + zone_hours * 3600;
    let (y, m, d) = civil_from_days(local.div_euclid(86_400));
    let sod = local.rem_euclid(86_400);
    let sign = if zone_hours < 0 { '-' } else { '+' };
    let bytes = if status == 304 { "-".to_string() } else { bytes.to_string() };
    format!(
        "{ip} - - [{d:02}/{}/{y}:{:02}:{:02}:{:02} {sign}{:02}00] \"{method} {url} HTTP/1.1\" {status} {bytes} \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\"",
        MONTHS[(m - 1) as usize],
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        zone_hours.abs()
    )
    .into_bytes()
}

/// Seller map, crowd overrides and incomes for generated transactions.
fn write_spending_side_files(g: &mut Gen, dir: &Path) -> std::io::Result<()> {
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/sample_data/spending/sellers.tsv"), dir.join("sellers.tsv"))?;
    let mut overrides = open(&dir.join("overrides.tsv"))?;
    writeln!(overrides, "user_id\tseller\tcategory")?;
    for shop in 29..2_000 {
        for _ in 0..g.rng.random_range(0..4) {
            let category = CATEGORIES[g.rng.random_range(0..CATEGORIES.len())];
            writeln!(overrides, "u{}\tShop {shop}\t{category}", g.rng.random_range(0..100_000u32))?;
        }
    }
    overrides.flush()?;
    let mut incomes = open(&dir.join("incomes.tsv"))?;
    writeln!(incomes, "user_id\tmonthly_income")?;
    for user in 0..100_000u32 {
        if g.rng.random_range(0..4) != 0 {
            writeln!(incomes, "u{user}\t{}", g.money(1_000_000))?;
        }
    }
    incomes.flush()
}
