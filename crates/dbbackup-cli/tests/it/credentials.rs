//! Database passwords kept out of URLs: `--password-env`, `--password-file`, and MySQL's own
//! `MYSQL_PWD` and `~/.my.cnf`, against a MariaDB of its own whose user has a password (the
//! shared servers trust their users, so they cannot tell).

use super::binlog::{sql_at, Scratch};
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_come_from_a_variable_a_file_mysql_pwd_or_my_cnf_and_never_show() {
    let d = Dir::new("creds");
    let maria = Scratch::start(&d.0);
    let root = maria.url();
    let secret = "pw-S3cret/with@odd:chars";
    sql_at(
        &root,
        "mysql",
        &format!(
            "CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY '{secret}'; \
             CREATE DATABASE shop; GRANT ALL ON *.* TO 'app'@'127.0.0.1'; \
             CREATE TABLE shop.o (id INT PRIMARY KEY); INSERT INTO shop.o VALUES (1), (2), (3)"
        ),
    )
    .await;
    let url = root.replace("root@", "app@") + "/shop";
    std::fs::write(d.p("pw"), format!("{secret}\n")).unwrap();
    let home = d.p("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join(".my.cnf"),
        format!("[mysqld]\npassword = wrong\n[client]\nuser = app\npassword = \"{secret}\"\n"),
    )
    .unwrap();
    let empty_home = d.p("empty-home");
    std::fs::create_dir_all(&empty_home).unwrap();
    let home_s = home.to_str().unwrap();
    let empty_s = empty_home.to_str().unwrap();
    let backup = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["backup", "--source", &url, "--repo", "repo"];
        args.extend_from_slice(extra);
        let mut env = env.to_vec();
        if !env.iter().any(|(k, _)| *k == "HOME") {
            env.push(("HOME", empty_s));
        }
        dbbackup_with(&d, &args, &env)
    };
    // No password anywhere: refused by the server, said so.
    let out = backup(&[], &[]);
    assert_eq!(code(&out), Some(1), "{}", text(&out));
    assert!(text(&out).contains("Access denied"), "{}", text(&out));
    for (how, extra, env) in [
        (
            "--password-env",
            vec!["--password-env", "DBPW"],
            vec![("DBPW", secret)],
        ),
        (
            "--password-file",
            vec!["--password-file", d.p("pw").to_str().unwrap()],
            vec![],
        ),
        ("MYSQL_PWD", vec![], vec![("MYSQL_PWD", secret)]),
        ("~/.my.cnf", vec![], vec![("HOME", home_s)]),
    ] {
        let out = backup(&extra, &env);
        assert_eq!(code(&out), Some(0), "{how}: {}", text(&out));
        assert!(!text(&out).contains(secret), "{how}: {}", text(&out));
    }
    // The same flags restore, into a database the flag's password may create.
    let target = root.replace("root@", "app@") + "/shop_copy";
    let out = dbbackup_with(
        &d,
        &[
            "restore",
            "--repo",
            "repo",
            "--target",
            &target,
            "--create",
            "--password-env",
            "DBPW",
        ],
        &[("DBPW", secret), ("HOME", empty_s)],
    );
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    let out = dbbackup_with(
        &d,
        &[
            "restore-test",
            "--repo",
            "repo",
            "--scratch",
            &root.replace("root@", "app@"),
            "--password-env",
            "DBPW",
        ],
        &[("DBPW", secret), ("HOME", empty_s)],
    );
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    // Mistakes are usage errors that say what is wrong.
    let out = backup(&["--password-env", "NOT_SET_ANYWHERE"], &[]);
    assert_eq!(code(&out), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("NOT_SET_ANYWHERE is not set"),
        "{}",
        text(&out)
    );
    let out = dbbackup_with(
        &d,
        &[
            "backup",
            "--source",
            "sqlite://x.db",
            "--repo",
            "r2",
            "--password-env",
            "DBPW",
        ],
        &[("DBPW", secret)],
    );
    assert_eq!(code(&out), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("SQLite file has no password"),
        "{}",
        text(&out)
    );
    let out = dbbackup_with(
        &d,
        &[
            "backup",
            "--source",
            "mysql://127.0.0.1/shop",
            "--repo",
            "r2",
            "--password-env",
            "DBPW",
        ],
        &[("DBPW", secret)],
    );
    assert_eq!(code(&out), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("needs a user in the URL"),
        "{}",
        text(&out)
    );
}
