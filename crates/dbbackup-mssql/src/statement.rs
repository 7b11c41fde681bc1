//! Typed builders for SQL Server's `BACKUP` and `RESTORE` statements.
//!
//! Every name and path goes through [`crate::quote`]; every option is a typed value, so a builder
//! can only produce the statement it describes. Combinations SQL Server would reject or silently
//! ignore (a differential `COPY_ONLY`, disk and URL devices mixed, `STATS = 0`) are refused with
//! an error that says what to change.
//!
//! ```
//! use dbbackup_mssql::{BackupDatabase, Device};
//! let sql = BackupDatabase::new("shop")
//!     .to(Device::Disk("/var/opt/mssql/backup/shop.bak".into()))
//!     .compression(true)
//!     .checksum(true)
//!     .stats(10)
//!     .to_sql()
//!     .unwrap();
//! assert_eq!(
//!     sql,
//!     "BACKUP DATABASE [shop] TO DISK = N'/var/opt/mssql/backup/shop.bak' WITH COMPRESSION, CHECKSUM, STATS = 10"
//! );
//! ```

use dbbackup_core::{Error, ErrorKind, Result};
use time::PrimitiveDateTime;

use crate::quote::{ident, literal};

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidInput, msg)
}

/// Where a backup is written or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device {
    /// A file path as the server sees it.
    Disk(String),
    /// An object-storage URL (`https://account.blob.core.windows.net/...`, or `s3://...` on
    /// SQL Server 2022+).
    Url(String),
}

fn devices(keyword: &str, list: &[Device]) -> Result<String> {
    if list.is_empty() {
        return Err(invalid(format!(
            "{keyword} needs at least one device: add .to(Device::Disk(..)) or .to(Device::Url(..))"
        )));
    }
    if list.len() > 64 {
        return Err(invalid(format!(
            "{} backup devices given; SQL Server takes at most 64",
            list.len()
        )));
    }
    let urls = list.iter().filter(|d| matches!(d, Device::Url(_))).count();
    if urls != 0 && urls != list.len() {
        return Err(invalid(
            "disk and URL devices cannot be mixed in one backup; use one kind",
        ));
    }
    let parts = list
        .iter()
        .map(|d| match d {
            Device::Disk(p) => Ok(format!("DISK = {}", literal(p)?)),
            Device::Url(u) => Ok(format!("URL = {}", literal(u)?)),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(format!("{keyword} {}", parts.join(", ")))
}

fn stats_option(stats: Option<u8>, opts: &mut Vec<String>) -> Result<()> {
    if let Some(s) = stats {
        if !(1..=100).contains(&s) {
            return Err(invalid(format!(
                "STATS = {s}: give a percentage from 1 to 100"
            )));
        }
        opts.push(format!("STATS = {s}"));
    }
    Ok(())
}

fn with(opts: Vec<String>) -> String {
    if opts.is_empty() {
        String::new()
    } else {
        format!(" WITH {}", opts.join(", "))
    }
}

/// The backup encryption algorithms SQL Server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncryptionAlgorithm {
    /// `AES_128`.
    Aes128,
    /// `AES_192`.
    Aes192,
    /// `AES_256`.
    Aes256,
    /// `TRIPLE_DES_3KEY`.
    TripleDes3Key,
}

impl EncryptionAlgorithm {
    fn keyword(self) -> &'static str {
        match self {
            Self::Aes128 => "AES_128",
            Self::Aes192 => "AES_192",
            Self::Aes256 => "AES_256",
            Self::TripleDes3Key => "TRIPLE_DES_3KEY",
        }
    }
}

/// What encrypts the backup's key on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encryptor {
    /// `SERVER CERTIFICATE = [name]` (a certificate in `master`).
    ServerCertificate(String),
    /// `SERVER ASYMMETRIC KEY = [name]` (an EKM key).
    ServerAsymmetricKey(String),
}

/// SQL Server's own backup encryption (`WITH ENCRYPTION (...)`). dbbackup encrypts whatever it
/// stores independently of this; this option protects the file the server writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupEncryption {
    /// The algorithm.
    pub algorithm: EncryptionAlgorithm,
    /// The certificate or key that protects it.
    pub encryptor: Encryptor,
}

impl BackupEncryption {
    fn sql(&self) -> Result<String> {
        let enc = match &self.encryptor {
            Encryptor::ServerCertificate(n) => format!("SERVER CERTIFICATE = {}", ident(n)?),
            Encryptor::ServerAsymmetricKey(n) => format!("SERVER ASYMMETRIC KEY = {}", ident(n)?),
        };
        Ok(format!(
            "ENCRYPTION (ALGORITHM = {}, {enc})",
            self.algorithm.keyword()
        ))
    }
}

/// Options `BACKUP DATABASE` and `BACKUP LOG` share.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Common {
    devices: Vec<Device>,
    copy_only: bool,
    compression: Option<bool>,
    checksum: Option<bool>,
    stats: Option<u8>,
    encryption: Option<BackupEncryption>,
    init: bool,
    format: bool,
    name: Option<String>,
    description: Option<String>,
    credential: Option<String>,
}

impl Common {
    fn options(&self, opts: &mut Vec<String>) -> Result<()> {
        if let Some(c) = &self.credential {
            opts.push(format!("CREDENTIAL = {}", literal(c)?));
        }
        if self.copy_only {
            opts.push("COPY_ONLY".into());
        }
        if self.format {
            opts.push("FORMAT".into());
        }
        if self.init {
            opts.push("INIT".into());
        }
        if let Some(n) = &self.name {
            if n.encode_utf16().count() > 128 {
                return Err(invalid("a backup set NAME is at most 128 characters"));
            }
            opts.push(format!("NAME = {}", literal(n)?));
        }
        if let Some(d) = &self.description {
            if d.encode_utf16().count() > 255 {
                return Err(invalid(
                    "a backup set DESCRIPTION is at most 255 characters",
                ));
            }
            opts.push(format!("DESCRIPTION = {}", literal(d)?));
        }
        match self.compression {
            Some(true) => opts.push("COMPRESSION".into()),
            Some(false) => opts.push("NO_COMPRESSION".into()),
            None => {}
        }
        if let Some(e) = &self.encryption {
            opts.push(e.sql()?);
        }
        match self.checksum {
            Some(true) => opts.push("CHECKSUM".into()),
            Some(false) => opts.push("NO_CHECKSUM".into()),
            None => {}
        }
        Ok(())
    }
}

macro_rules! common_setters {
    () => {
        /// Adds a device to write to (repeat to stripe the backup over several).
        pub fn to(mut self, device: Device) -> Self {
            self.common.devices.push(device);
            self
        }
        /// `COPY_ONLY`: a backup outside the regular chain (it does not reset the differential
        /// base or truncate the log).
        pub fn copy_only(mut self, yes: bool) -> Self {
            self.common.copy_only = yes;
            self
        }
        /// `COMPRESSION` / `NO_COMPRESSION` (unset: the server's default).
        pub fn compression(mut self, yes: bool) -> Self {
            self.common.compression = Some(yes);
            self
        }
        /// `CHECKSUM` / `NO_CHECKSUM` (unset: the server's default).
        pub fn checksum(mut self, yes: bool) -> Self {
            self.common.checksum = Some(yes);
            self
        }
        /// `STATS = percent`: a progress message every `percent` percent.
        pub fn stats(mut self, percent: u8) -> Self {
            self.common.stats = Some(percent);
            self
        }
        /// `ENCRYPTION (...)`.
        pub fn encryption(mut self, e: BackupEncryption) -> Self {
            self.common.encryption = Some(e);
            self
        }
        /// `INIT`: overwrite the backup sets in the file instead of appending.
        pub fn init(mut self, yes: bool) -> Self {
            self.common.init = yes;
            self
        }
        /// `FORMAT`: write a new media header (implies `INIT`).
        pub fn format(mut self, yes: bool) -> Self {
            self.common.format = yes;
            self
        }
        /// `NAME = N'...'` of the backup set.
        pub fn name(mut self, name: impl Into<String>) -> Self {
            self.common.name = Some(name.into());
            self
        }
        /// `DESCRIPTION = N'...'` of the backup set.
        pub fn description(mut self, d: impl Into<String>) -> Self {
            self.common.description = Some(d.into());
            self
        }
        /// `CREDENTIAL = N'...'` for a URL device.
        pub fn credential(mut self, name: impl Into<String>) -> Self {
            self.common.credential = Some(name.into());
            self
        }
    };
}

/// Full or differential.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BackupKind {
    /// A full database backup.
    #[default]
    Full,
    /// Changes since the last full (non-copy-only) backup.
    Differential,
}

/// `BACKUP DATABASE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupDatabase {
    database: String,
    kind: BackupKind,
    common: Common,
}

impl BackupDatabase {
    /// A full backup of `database`.
    pub fn new(database: impl Into<String>) -> Self {
        Self {
            database: database.into(),
            kind: BackupKind::Full,
            common: Common::default(),
        }
    }

    /// Full or differential.
    pub fn kind(mut self, kind: BackupKind) -> Self {
        self.kind = kind;
        self
    }

    common_setters!();

    /// The statement.
    pub fn to_sql(&self) -> Result<String> {
        if self.kind == BackupKind::Differential && self.common.copy_only {
            return Err(invalid(
                "COPY_ONLY has no effect on a DIFFERENTIAL backup (SQL Server ignores it); drop one of them",
            ));
        }
        let mut opts = Vec::new();
        if self.kind == BackupKind::Differential {
            opts.push("DIFFERENTIAL".into());
        }
        self.common.options(&mut opts)?;
        stats_option(self.common.stats, &mut opts)?;
        Ok(format!(
            "BACKUP DATABASE {} {}{}",
            ident(&self.database)?,
            devices("TO", &self.common.devices)?,
            with(opts)
        ))
    }
}

/// `BACKUP LOG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupLog {
    database: String,
    common: Common,
    norecovery: bool,
    no_truncate: bool,
}

impl BackupLog {
    /// A transaction log backup of `database` (full or bulk-logged recovery model).
    pub fn new(database: impl Into<String>) -> Self {
        Self {
            database: database.into(),
            common: Common::default(),
            norecovery: false,
            no_truncate: false,
        }
    }

    common_setters!();

    /// `NORECOVERY`: a tail-log backup that leaves the database restoring.
    pub fn norecovery(mut self, yes: bool) -> Self {
        self.norecovery = yes;
        self
    }

    /// `NO_TRUNCATE`: back up the log of a damaged database.
    pub fn no_truncate(mut self, yes: bool) -> Self {
        self.no_truncate = yes;
        self
    }

    /// The statement.
    pub fn to_sql(&self) -> Result<String> {
        let mut opts = Vec::new();
        self.common.options(&mut opts)?;
        if self.norecovery {
            opts.push("NORECOVERY".into());
        }
        if self.no_truncate {
            opts.push("NO_TRUNCATE".into());
        }
        stats_option(self.common.stats, &mut opts)?;
        Ok(format!(
            "BACKUP LOG {} {}{}",
            ident(&self.database)?,
            devices("TO", &self.common.devices)?,
            with(opts)
        ))
    }
}

/// How a restore leaves the database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Recovery {
    /// `RECOVERY`: roll back uncommitted work and open the database (the end of a chain).
    #[default]
    Recovery,
    /// `NORECOVERY`: leave it restoring, ready for the next differential or log backup.
    NoRecovery,
    /// `STANDBY = N'undo file'`: read-only between log restores.
    Standby(String),
}

/// A point in time for `STOPAT`, in the server's local time (as SQL Server reads it).
pub type StopAt = PrimitiveDateTime;

fn stop_at_literal(t: &StopAt) -> Result<String> {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]"
    );
    let s = t
        .format(&fmt)
        .map_err(|e| invalid(format!("STOPAT {t}: {e}")))?;
    literal(&s)
}

/// Options `RESTORE DATABASE`, `RESTORE LOG` and `RESTORE VERIFYONLY` share.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RestoreCommon {
    devices: Vec<Device>,
    file: Option<u32>,
    checksum: Option<bool>,
    stats: Option<u8>,
    credential: Option<String>,
}

impl RestoreCommon {
    fn options(&self, opts: &mut Vec<String>) -> Result<()> {
        if let Some(c) = &self.credential {
            opts.push(format!("CREDENTIAL = {}", literal(c)?));
        }
        if let Some(f) = self.file {
            if f == 0 {
                return Err(invalid("FILE = 0: backup set positions start at 1"));
            }
            opts.push(format!("FILE = {f}"));
        }
        match self.checksum {
            Some(true) => opts.push("CHECKSUM".into()),
            Some(false) => opts.push("NO_CHECKSUM".into()),
            None => {}
        }
        Ok(())
    }
}

macro_rules! restore_setters {
    () => {
        /// Adds a device to read from (all stripes of a striped backup).
        pub fn from(mut self, device: Device) -> Self {
            self.common.devices.push(device);
            self
        }
        /// `FILE = n`: which backup set in the media (1-based).
        pub fn file(mut self, position: u32) -> Self {
            self.common.file = Some(position);
            self
        }
        /// `CHECKSUM` / `NO_CHECKSUM`.
        pub fn checksum(mut self, yes: bool) -> Self {
            self.common.checksum = Some(yes);
            self
        }
        /// `STATS = percent`.
        pub fn stats(mut self, percent: u8) -> Self {
            self.common.stats = Some(percent);
            self
        }
        /// `CREDENTIAL = N'...'` for a URL device.
        pub fn credential(mut self, name: impl Into<String>) -> Self {
            self.common.credential = Some(name.into());
            self
        }
    };
}

/// `RESTORE DATABASE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreDatabase {
    database: String,
    common: RestoreCommon,
    moves: Vec<(String, String)>,
    recovery: Recovery,
    replace: bool,
    stop_at: Option<StopAt>,
}

impl RestoreDatabase {
    /// A restore of (or into) `database`.
    pub fn new(database: impl Into<String>) -> Self {
        Self {
            database: database.into(),
            common: RestoreCommon::default(),
            moves: Vec::new(),
            recovery: Recovery::Recovery,
            replace: false,
            stop_at: None,
        }
    }

    restore_setters!();

    /// `MOVE N'logical' TO N'physical'`: where a data or log file goes.
    pub fn move_file(mut self, logical: impl Into<String>, physical: impl Into<String>) -> Self {
        self.moves.push((logical.into(), physical.into()));
        self
    }

    /// `RECOVERY`, `NORECOVERY` or `STANDBY`.
    pub fn recovery(mut self, r: Recovery) -> Self {
        self.recovery = r;
        self
    }

    /// `REPLACE`: overwrite an existing database of that name.
    pub fn replace(mut self, yes: bool) -> Self {
        self.replace = yes;
        self
    }

    /// `STOPAT`: recover only up to this moment.
    pub fn stop_at(mut self, t: StopAt) -> Self {
        self.stop_at = Some(t);
        self
    }

    /// The statement.
    pub fn to_sql(&self) -> Result<String> {
        let mut opts = Vec::new();
        self.common.options(&mut opts)?;
        for (l, p) in &self.moves {
            opts.push(format!("MOVE {} TO {}", literal(l)?, literal(p)?));
        }
        recovery_options(&self.recovery, self.stop_at.as_ref(), &mut opts)?;
        if self.replace {
            opts.push("REPLACE".into());
        }
        stats_option(self.common.stats, &mut opts)?;
        Ok(format!(
            "RESTORE DATABASE {} {}{}",
            ident(&self.database)?,
            devices("FROM", &self.common.devices)?,
            with(opts)
        ))
    }
}

fn recovery_options(r: &Recovery, stop_at: Option<&StopAt>, opts: &mut Vec<String>) -> Result<()> {
    match r {
        Recovery::Recovery => opts.push("RECOVERY".into()),
        Recovery::NoRecovery => opts.push("NORECOVERY".into()),
        Recovery::Standby(undo) => opts.push(format!("STANDBY = {}", literal(undo)?)),
    }
    if let Some(t) = stop_at {
        opts.push(format!("STOPAT = {}", stop_at_literal(t)?));
    }
    Ok(())
}

/// `RESTORE LOG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreLog {
    database: String,
    common: RestoreCommon,
    recovery: Recovery,
    stop_at: Option<StopAt>,
}

impl RestoreLog {
    /// Applies a log backup to `database` (restored `WITH NORECOVERY` before).
    pub fn new(database: impl Into<String>) -> Self {
        Self {
            database: database.into(),
            common: RestoreCommon::default(),
            recovery: Recovery::Recovery,
            stop_at: None,
        }
    }

    restore_setters!();

    /// `RECOVERY` (the last log of the chain), `NORECOVERY` (more to come) or `STANDBY`.
    pub fn recovery(mut self, r: Recovery) -> Self {
        self.recovery = r;
        self
    }

    /// `STOPAT`: point-in-time recovery.
    pub fn stop_at(mut self, t: StopAt) -> Self {
        self.stop_at = Some(t);
        self
    }

    /// The statement.
    pub fn to_sql(&self) -> Result<String> {
        let mut opts = Vec::new();
        self.common.options(&mut opts)?;
        recovery_options(&self.recovery, self.stop_at.as_ref(), &mut opts)?;
        stats_option(self.common.stats, &mut opts)?;
        Ok(format!(
            "RESTORE LOG {} {}{}",
            ident(&self.database)?,
            devices("FROM", &self.common.devices)?,
            with(opts)
        ))
    }
}

/// `RESTORE VERIFYONLY`: the server reads the backup and checks it is complete and readable
/// (and, with `CHECKSUM`, its page checksums) without restoring it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreVerifyOnly {
    common: RestoreCommon,
}

impl RestoreVerifyOnly {
    /// An empty statement; add devices with [`RestoreVerifyOnly::from`].
    pub fn new() -> Self {
        Self::default()
    }

    restore_setters!();

    /// The statement.
    pub fn to_sql(&self) -> Result<String> {
        let mut opts = Vec::new();
        self.common.options(&mut opts)?;
        stats_option(self.common.stats, &mut opts)?;
        Ok(format!(
            "RESTORE VERIFYONLY {}{}",
            devices("FROM", &self.common.devices)?,
            with(opts)
        ))
    }
}
