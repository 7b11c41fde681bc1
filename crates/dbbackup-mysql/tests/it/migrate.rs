use std::sync::Arc;

use dbbackup_core::{BackupSelector, MemorySink, Restore, Sink};
use dbbackup_mysql::{not_migration_table, snapshot_before_migrate};
use sqlx::migrate::Migrator;

use crate::*;

fn write_migrations(dir: &std::path::Path, files: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, sql) in files {
        std::fs::write(dir.join(name), sql).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_migrate_and_restore_old_rows_into_the_new_schema() {
    let dir = std::env::temp_dir().join(format!("dbbackup-my-migrations-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let v1 = (
        "1_init.sql",
        "CREATE TABLE users (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(40) NOT NULL, nickname VARCHAR(40)) ENGINE=InnoDB;",
    );
    write_migrations(&dir, &[v1]);
    let db = TestDb::new("migrate").await;
    let pool = sqlx::MySqlPool::connect(&db.url()).await.unwrap();
    Migrator::new(dir.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO users (name, nickname) SELECT CONCAT('u', seq), CONCAT('n', seq) FROM seq_1_to_300")
        .execute(&pool)
        .await
        .unwrap();
    let sink: Arc<dyn Sink> = Arc::new(MemorySink::new());
    // Nothing pending: no backup.
    let none = snapshot_before_migrate(
        &Migrator::new(dir.as_path()).await.unwrap(),
        &db.url(),
        sink.clone(),
        |b| b,
    )
    .await
    .unwrap();
    assert!(none.is_none());
    let v2 = (
        "2_emails.sql",
        "ALTER TABLE users DROP COLUMN nickname, ADD COLUMN email VARCHAR(60) NOT NULL DEFAULT 'none';",
    );
    write_migrations(&dir, &[v2]);
    let migrator = Migrator::new(dir.as_path()).await.unwrap();
    let report = snapshot_before_migrate(&migrator, &db.url(), sink.clone(), |b| {
        b.label("by", "test")
    })
    .await
    .unwrap()
    .expect("a migration is pending");
    let labels = &report.manifest.labels;
    assert_eq!(labels["reason"], "pre-migration");
    assert_eq!(labels["migration.current"], "1");
    assert_eq!(labels["migration.target"], "2");
    assert_eq!(labels["by"], "test");
    // Re-initialise the schema from the migrations, then restore the old rows into it.
    pool.close().await;
    let fresh = TestDb::new("migrate_fresh").await;
    let pool2 = sqlx::MySqlPool::connect(&fresh.url()).await.unwrap();
    migrator.run(&pool2).await.unwrap();
    let restored = Restore::builder()
        .sink(sink)
        .backup(BackupSelector::Id(report.backup_id().to_owned()))
        .target(target(&fresh).data_only(true))
        .filter(not_migration_table)
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    assert!(
        restored.warnings.iter().any(|w| w.contains("nickname")),
        "{:?}",
        restored.warnings
    );
    let (n, email): (i64, String) = sqlx::query_as("SELECT COUNT(*), MIN(email) FROM users")
        .fetch_one(&pool2)
        .await
        .unwrap();
    assert_eq!((n, email.as_str()), (300, "none"));
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY 1")
        .fetch_all(&pool2)
        .await
        .unwrap();
    assert_eq!(versions, vec![1, 2]);
    pool2.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
