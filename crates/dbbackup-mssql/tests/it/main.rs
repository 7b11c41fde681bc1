//! dbbackup-mssql's tests: statement generation, type mapping, the wire path against a TDS test
//! server on loopback, and (when `DBBACKUP_MSSQL_URL` is set) a real SQL Server.

mod logical;
mod real;
mod server_backup;
mod statements;
mod types;
mod wire;
