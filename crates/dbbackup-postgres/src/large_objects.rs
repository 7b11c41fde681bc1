//! Large objects: their data, as one entry (`large-objects-v1`), read in 1 MiB pieces with
//! `lo_get` inside the backup's snapshot and written back with `lo_create` / `lo_put`, as
//! pg_dump's `dumpBlobs` / `dumpLOs` do with `lo_read` / `lowrite`.
//!
//! The format is a sequence of pieces: the object's OID (u32, big-endian), the offset (u64), the
//! length (u32) and the bytes. An object's first piece has offset 0 (an empty object is that one
//! piece with length 0), so a restore creates each object when it meets offset 0.

use bytes::{Buf, BufMut, BytesMut};
use dbbackup_core::statements::BlockSender;
use dbbackup_core::{ByteStream, Error, ErrorKind, Result};
use futures::StreamExt;
use sqlx::PgConnection;

use crate::error::pg_error;

/// Bytes read per `lo_get` call and written per `lo_put`.
pub(crate) const PIECE: usize = 1 << 20;
/// The entry's name.
pub(crate) const ENTRY: &str = "data/large-objects";

/// Streams every large object of the snapshot into `sender`, one object per row.
pub(crate) async fn read_all(conn: &mut PgConnection, sender: &mut BlockSender) -> Result<()> {
    let oids: Vec<i64> =
        sqlx::query_scalar("SELECT oid::int8 FROM pg_largeobject_metadata ORDER BY oid")
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| pg_error(e, ErrorKind::Source, "cannot list the large objects"))?;
    for oid in oids {
        let mut offset: i64 = 0;
        loop {
            let piece: Vec<u8> = sqlx::query_scalar("SELECT lo_get($1::int8::oid, $2, $3)")
                .bind(oid)
                .bind(offset)
                .bind(PIECE as i32)
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| {
                    pg_error(
                        e,
                        ErrorKind::Source,
                        &format!("cannot read large object {oid}"),
                    )
                })?;
            let buf = sender.buffer();
            buf.put_u32(oid as u32);
            buf.put_u64(offset as u64);
            buf.put_u32(piece.len() as u32);
            buf.extend_from_slice(&piece);
            let more = piece.len() == PIECE;
            offset += piece.len() as i64;
            if !more {
                break;
            }
            if sender.buffer().len() >= PIECE {
                sender.flush().await?;
            }
        }
        sender.row_done().await?;
    }
    sender.flush().await
}

/// Writes the objects of `data` into the connection's database; returns how many were created.
/// With `clean`, an object of the same OID the database has is unlinked first (`--clean`, as
/// pg_restore does).
pub(crate) async fn write_all(
    conn: &mut PgConnection,
    mut data: ByteStream,
    clean: bool,
) -> Result<u64> {
    let mut buf = BytesMut::new();
    let mut created = 0u64;
    loop {
        // One whole piece, or the end.
        while let Some(len) = piece_len(&buf)? {
            if buf.len() < 16 + len {
                break;
            }
            let oid = buf.get_u32();
            let offset = buf.get_u64();
            let _ = buf.get_u32();
            let bytes = buf.split_to(len);
            let what = format!("restoring large object {oid} failed");
            if offset == 0 && clean {
                sqlx::query(
                    "SELECT lo_unlink(oid) FROM pg_largeobject_metadata WHERE oid = $1::int8::oid",
                )
                .bind(oid as i64)
                .execute(&mut *conn)
                .await
                .map_err(|e| pg_error(e, ErrorKind::Target, &what))?;
            }
            if offset == 0 {
                sqlx::query("SELECT lo_create($1::int8::oid)")
                    .bind(oid as i64)
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| pg_error(e, ErrorKind::Target, &what))?;
                created += 1;
            }
            if !bytes.is_empty() {
                sqlx::query("SELECT lo_put($1::int8::oid, $2, $3)")
                    .bind(oid as i64)
                    .bind(offset as i64)
                    .bind(bytes.as_ref())
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| pg_error(e, ErrorKind::Target, &what))?;
            }
        }
        match data.next().await {
            Some(chunk) => buf.extend_from_slice(&chunk?),
            None if buf.is_empty() => return Ok(created),
            None => {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    "the large-object data ends inside a piece",
                ))
            }
        }
    }
}

/// The length of the piece at the start of `buf`, once its header is there.
fn piece_len(buf: &[u8]) -> Result<Option<usize>> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let len = u32::from_be_bytes(buf[12..16].try_into().expect("4 bytes")) as usize;
    if len > PIECE {
        return Err(Error::new(
            ErrorKind::Corrupt,
            format!("a large-object piece claims {len} bytes, more than the {PIECE} written"),
        ));
    }
    Ok(Some(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_framed_and_oversized_lengths_refused() {
        let mut b = BytesMut::new();
        b.put_u32(7);
        b.put_u64(0);
        b.put_u32(3);
        assert_eq!(piece_len(&b).unwrap(), Some(3));
        assert_eq!(piece_len(&b[..15]).unwrap(), None);
        let mut bad = BytesMut::new();
        bad.put_u32(7);
        bad.put_u64(0);
        bad.put_u32(PIECE as u32 + 1);
        assert!(piece_len(&bad).is_err());
    }
}
