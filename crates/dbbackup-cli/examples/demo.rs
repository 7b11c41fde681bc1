//! The embedded default, end to end, with no server: creates a small SQLite database, backs it up
//! with zstd + AES-256-GCM into a local repository through the `dbbackup` command line, lists,
//! verifies, restores to a new file and compares.
//!
//! `cargo run -p dbbackup-cli --example demo [-- DIR]`

use std::path::PathBuf;
use std::process::ExitCode;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

fn cli(args: &[&str]) -> ExitCode {
    println!("\n$ dbbackup {}", args.join(" "));
    let code = dbbackup_cli::run(std::iter::once("dbbackup").chain(args.iter().copied()));
    if code != ExitCode::SUCCESS {
        eprintln!("demo: the command above failed");
        std::process::exit(1);
    }
    code
}

fn main() -> ExitCode {
    let given = std::env::args().nth(1).map(PathBuf::from);
    let keep = given.is_some();
    let dir = given.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("dbbackup-demo-{}", std::process::id()))
    });
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("demo directory");
    std::env::set_current_dir(&dir).expect("demo directory");
    println!("demo directory: {}", dir.display());

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let count = |path: &'static str| {
        rt.block_on(async move {
            let mut c = SqliteConnectOptions::new()
                .filename(path)
                .connect()
                .await
                .expect("open");
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
                .fetch_one(&mut c)
                .await
                .expect("count");
            let s: f64 = sqlx::query_scalar("SELECT total(amount) FROM orders")
                .fetch_one(&mut c)
                .await
                .expect("sum");
            (n, s)
        })
    };
    rt.block_on(async {
        let mut c = SqliteConnectOptions::new()
            .filename("app.db")
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .connect()
            .await
            .expect("create app.db");
        sqlx::query("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, amount REAL, note TEXT)")
            .execute(&mut c)
            .await
            .expect("schema");
        let mut tx = c.begin().await.expect("tx");
        for i in 0..50_000 {
            sqlx::query("INSERT INTO orders (customer, amount, note) VALUES (?, ?, ?)")
                .bind(format!("customer-{}", i % 977))
                .bind(i as f64 * 1.25)
                .bind(if i % 3 == 0 { None } else { Some(format!("note {i} ✓")) })
                .execute(&mut *tx)
                .await
                .expect("insert");
        }
        tx.commit().await.expect("commit");
    });
    println!("created app.db with 50 000 orders (WAL mode)");

    // The passphrase comes from an environment variable, never from the command line.
    std::env::set_var("DEMO_PASSPHRASE", "correct horse battery staple");
    cli(&[
        "backup",
        "--source",
        "sqlite://app.db",
        "--repo",
        "repo",
        "--compression",
        "zstd:3",
        "--passphrase-env",
        "DEMO_PASSPHRASE",
        "--label",
        "reason=demo",
    ]);
    cli(&["list", "--repo", "repo"]);
    cli(&[
        "verify",
        "--repo",
        "repo",
        "--backup",
        "latest",
        "--passphrase-env",
        "DEMO_PASSPHRASE",
    ]);
    // Proven restorable: restored into a scratch file, rows counted, integrity checked, recorded.
    cli(&[
        "restore-test",
        "--repo",
        "repo",
        "--passphrase-env",
        "DEMO_PASSPHRASE",
        "--check",
        "select count(*) = 50000 from orders",
    ]);
    cli(&[
        "restore",
        "--repo",
        "repo",
        "--backup",
        "latest",
        "--target",
        "sqlite://restored.db",
        "--passphrase-env",
        "DEMO_PASSPHRASE",
    ]);
    let (a, b) = (count("app.db"), count("restored.db"));
    println!(
        "\noriginal: {} rows, total {}; restored: {} rows, total {}",
        a.0, a.1, b.0, b.1
    );
    assert_eq!(a, b, "the restored database differs");
    println!("restored database matches the original");
    std::env::set_current_dir(std::env::temp_dir()).expect("leave the demo directory");
    if keep {
        println!("kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
        println!(
            "removed {} (give a directory as the argument to keep it)",
            dir.display()
        );
    }
    ExitCode::SUCCESS
}
