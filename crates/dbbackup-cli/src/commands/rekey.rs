//! `dbbackup rekey`: re-wrap every data key under a new key.

use std::process::ExitCode;

#[allow(unused_imports)]
use crate::common::*;

/// Runs the command.
pub(crate) async fn run(a: crate::cli::RekeyArgs, json: bool) -> Result<ExitCode> {
    let repo = Repository::new(open_repo(a.repo.repo.clone())?)
        .allow_unencrypted(allow_unencrypted(&a.key));
    let old = load_key(&a.key)?
        .ok_or_else(|| invalid("rekey needs the current key: --passphrase-env or --key-file"))?;
    let new = key_from(a.new_passphrase_env.clone(), a.new_key_file.clone())?.ok_or_else(|| {
        invalid("rekey needs the new key: --new-passphrase-env or --new-key-file")
    })?;
    let report = repo.rekey(&old, &new).await?;
    if json {
        println!(
            "{}",
            json!({"ok": true, "command": "rekey", "report": report})
        );
    } else {
        println!(
            "rekeyed {} backup(s) to key id {} ({} already used it, {} unencrypted)",
            report.rekeyed.len(),
            report.new_key_id,
            report.already.len(),
            report.unencrypted.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
