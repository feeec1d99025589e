//! PostgreSQL's binary `COPY … TO STDOUT (FORMAT binary)` stream, read tuple by tuple.
//!
//! `ticketd verify` reads every event of the log once. Through `COPY` a row costs the client
//! a few length checks instead of a decoded row with a type check per column, and the server
//! sends the same bytes its binary result format would. The format
//! (<https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4>): an 11-byte
//! signature, a 32-bit flags field and a header extension of a stated length; then each tuple
//! as a 16-bit field count and, per field, a 32-bit length (−1 for NULL) and that many bytes;
//! then a field count of −1. Integers are big-endian.

use chrono::{DateTime, Utc};

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC).
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Why a stream is not binary COPY data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("binary COPY data: {0}")]
pub struct CopyError(pub String);

/// Takes the stream's chunks as they come (a tuple may span chunks) and hands each whole
/// tuple's fields to the caller.
#[derive(Default)]
pub struct CopyReader {
    /// Bytes of a tuple (or of the header) whose end has not come yet.
    pending: Vec<u8>,
    header_read: bool,
    ended: bool,
}

/// The most fields a tuple may have here (the events table has 12 columns).
pub const FIELDS_MAX: usize = 32;

impl CopyReader {
    /// Reads every whole tuple in `chunk` (after what was pending), calling `each` with its
    /// fields (`None` for NULL).
    pub fn feed<E: From<CopyError>>(
        &mut self,
        chunk: &[u8],
        mut each: impl FnMut(&[Option<&[u8]>]) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.pending.is_empty() {
            let used = self.read(chunk, &mut each)?;
            self.pending.extend_from_slice(&chunk[used..]);
        } else {
            let mut pending = std::mem::take(&mut self.pending);
            pending.extend_from_slice(chunk);
            let used = self.read(&pending, &mut each)?;
            pending.drain(..used);
            self.pending = pending;
        }
        Ok(())
    }

    /// After the last chunk: the stream must have ended with its trailer, nothing after it.
    pub fn finish(&self) -> Result<(), CopyError> {
        match (self.ended, self.pending.is_empty()) {
            (true, true) => Ok(()),
            (true, false) => Err(CopyError("bytes after the trailer".into())),
            (false, _) => Err(CopyError("the stream ended inside a tuple or before its trailer".into())),
        }
    }

    /// Reads what `bytes` holds whole; returns how many bytes that was.
    fn read<E: From<CopyError>>(
        &mut self,
        bytes: &[u8],
        each: &mut impl FnMut(&[Option<&[u8]>]) -> Result<(), E>,
    ) -> Result<usize, E> {
        let mut at = 0;
        if !self.header_read {
            if bytes.len() < SIGNATURE.len() + 8 {
                return Ok(0);
            }
            if &bytes[..SIGNATURE.len()] != SIGNATURE {
                return Err(CopyError("no PGCOPY signature".into()).into());
            }
            let extension = u32::from_be_bytes(bytes[15..19].try_into().expect("4 bytes")) as usize;
            if bytes.len() < 19 + extension {
                return Ok(0);
            }
            at = 19 + extension;
            self.header_read = true;
        }
        while at < bytes.len() {
            if self.ended {
                return Err(CopyError("bytes after the trailer".into()).into());
            }
            let Some(count) = bytes.get(at..at + 2) else { return Ok(at) };
            let count = i16::from_be_bytes(count.try_into().expect("2 bytes"));
            if count == -1 {
                self.ended = true;
                at += 2;
                continue;
            }
            if !(0..=FIELDS_MAX as i16).contains(&count) {
                return Err(CopyError(format!("a field count of {count}")).into());
            }
            let mut cursor = at + 2;
            let mut fields: [Option<&[u8]>; FIELDS_MAX] = [None; FIELDS_MAX];
            for field in fields.iter_mut().take(count as usize) {
                let Some(length) = bytes.get(cursor..cursor + 4) else { return Ok(at) };
                let length = i32::from_be_bytes(length.try_into().expect("4 bytes"));
                cursor += 4;
                if length == -1 {
                    continue;
                }
                let length = usize::try_from(length).map_err(|_| CopyError(format!("a field length of {length}")))?;
                if bytes.len() < cursor + length {
                    return Ok(at);
                }
                *field = Some(&bytes[cursor..cursor + length]);
                cursor += length;
            }
            each(&fields[..count as usize])?;
            at = cursor;
        }
        Ok(at)
    }
}

/// A field, which must not be NULL.
fn present<'a>(field: Option<&'a [u8]>, what: &str) -> Result<&'a [u8], CopyError> {
    field.ok_or_else(|| CopyError(format!("{what} is NULL")))
}

pub fn int8(field: Option<&[u8]>, what: &str) -> Result<i64, CopyError> {
    let bytes = present(field, what)?.try_into().map_err(|_| CopyError(format!("{what} is not 8 bytes")))?;
    Ok(i64::from_be_bytes(bytes))
}

pub fn int4(field: Option<&[u8]>, what: &str) -> Result<i32, CopyError> {
    let bytes = present(field, what)?.try_into().map_err(|_| CopyError(format!("{what} is not 4 bytes")))?;
    Ok(i32::from_be_bytes(bytes))
}

pub fn uuid(field: Option<&[u8]>, what: &str) -> Result<uuid::Uuid, CopyError> {
    uuid::Uuid::from_slice(present(field, what)?).map_err(|_| CopyError(format!("{what} is not 16 bytes")))
}

/// A `uuid` that may be NULL.
pub fn uuid_or_null(field: Option<&[u8]>, what: &str) -> Result<Option<uuid::Uuid>, CopyError> {
    field.map(|bytes| uuid(Some(bytes), what)).transpose()
}

pub fn text<'a>(field: Option<&'a [u8]>, what: &str) -> Result<&'a str, CopyError> {
    std::str::from_utf8(present(field, what)?).map_err(|_| CopyError(format!("{what} is not UTF-8")))
}

/// A `timestamptz`: microseconds since 2000-01-01 UTC (±infinity refused).
pub fn timestamptz(field: Option<&[u8]>, what: &str) -> Result<DateTime<Utc>, CopyError> {
    int8(field, what)?
        .checked_add(POSTGRES_EPOCH_MICROS)
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(|| CopyError(format!("{what} is out of range")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binary COPY stream of these tuples, as the server writes it (with a header extension).
    fn stream(tuples: &[Vec<Option<Vec<u8>>>]) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&3u32.to_be_bytes());
        out.extend_from_slice(b"ext");
        for tuple in tuples {
            out.extend_from_slice(&(tuple.len() as i16).to_be_bytes());
            for field in tuple {
                match field {
                    None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some(bytes) => {
                        out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                        out.extend_from_slice(bytes);
                    }
                }
            }
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    fn read_in_chunks(bytes: &[u8], size: usize) -> Result<Vec<Vec<Option<Vec<u8>>>>, CopyError> {
        let mut reader = CopyReader::default();
        let mut tuples = Vec::new();
        for chunk in bytes.chunks(size) {
            reader.feed(chunk, |fields| {
                tuples.push(fields.iter().map(|f| f.map(<[u8]>::to_vec)).collect());
                Ok::<_, CopyError>(())
            })?;
        }
        reader.finish()?;
        Ok(tuples)
    }

    #[test]
    fn tuples_come_out_whole_however_the_stream_is_cut() {
        let tuples = vec![
            vec![Some(7i64.to_be_bytes().to_vec()), Some(b"ticket-1".to_vec()), None, Some(Vec::new())],
            vec![Some(8i64.to_be_bytes().to_vec()), Some("árvíztűrő".as_bytes().to_vec()), Some(vec![0; 300]), None],
            vec![],
        ];
        let bytes = stream(&tuples);
        for size in 1..=bytes.len() {
            assert_eq!(read_in_chunks(&bytes, size).unwrap(), tuples, "chunks of {size}");
        }
    }

    #[test]
    fn a_cut_off_or_foreign_stream_is_refused() {
        let bytes = stream(&[vec![Some(vec![1, 2, 3])]]);
        for end in 0..bytes.len() {
            assert!(read_in_chunks(&bytes[..end], 5).is_err(), "cut at {end}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(read_in_chunks(&extra, 4).is_err(), "a byte after the trailer");
        let mut foreign = bytes;
        foreign[0] = b'X';
        assert!(read_in_chunks(&foreign, 64).is_err(), "no signature");
    }

    #[test]
    fn fields_decode_as_postgresql_sends_them() {
        assert_eq!(int8(Some(&(-2i64).to_be_bytes()), "n").unwrap(), -2);
        assert_eq!(int4(Some(&5i32.to_be_bytes()), "n").unwrap(), 5);
        assert!(int8(Some(&[0; 4]), "n").is_err());
        assert!(int8(None, "n").is_err(), "NULL where a value must be");
        // 2000-01-01T00:00:00.000001Z is one microsecond after PostgreSQL's epoch.
        let at = timestamptz(Some(&1i64.to_be_bytes()), "t").unwrap();
        assert_eq!(at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true), "2000-01-01T00:00:00.000001Z");
        assert!(timestamptz(Some(&i64::MAX.to_be_bytes()), "t").is_err(), "infinity");
        assert_eq!(uuid(Some(&[0xab; 16]), "id").unwrap(), uuid::Uuid::from_bytes([0xab; 16]));
        assert_eq!(uuid_or_null(None, "id").unwrap(), None);
        assert!(text(Some(&[0xff]), "s").is_err());
    }
}
