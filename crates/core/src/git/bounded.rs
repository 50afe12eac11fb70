//! Reading the small files the trust rests on (the policy, key files, the Sigstore trusted root) from paths
//! an operator or a CI job was given: regular files only, and never more than a bound.
//!
//! A path that names a FIFO blocks the reader on `open` until a writer comes (forever, for a policy path
//! pointed at a FIFO); a device such as `/dev/zero` says it holds 0 bytes and never ends; a directory reads
//! as an error only after opening. So the file type is checked **before** opening (the path's metadata,
//! symlinks followed), the opened handle is checked again (the path may have been replaced in between), and
//! at most `max + 1` bytes are read whatever the size the metadata gave.

use std::io::Read as _;
use std::path::Path;

/// Why a bounded file could not be read. The message names no path: callers name the file and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoundedReadError {
    #[error("{message}")]
    Io {
        kind: std::io::ErrorKind,
        message: String,
    },
    #[error("it is a {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("it is larger than the {0}-byte limit")]
    TooLarge(u64),
    #[error("it is not valid UTF-8")]
    NotUtf8,
}

/// The kind of a non-regular file, for messages.
fn kind_of(ft: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if ft.is_fifo() {
            return "FIFO";
        }
        if ft.is_char_device() {
            return "character device";
        }
        if ft.is_block_device() {
            return "block device";
        }
        if ft.is_socket() {
            return "socket";
        }
    }
    if ft.is_dir() {
        return "directory";
    }
    "special file"
}

fn regular(meta: &std::fs::Metadata) -> Result<(), BoundedReadError> {
    if meta.file_type().is_file() {
        Ok(())
    } else {
        Err(BoundedReadError::NotRegular(kind_of(meta.file_type())))
    }
}

/// Read the regular file at `path` (symlinks followed), at most `max` bytes.
pub fn read(path: &Path, max: u64) -> Result<Vec<u8>, BoundedReadError> {
    let io = |e: std::io::Error| BoundedReadError::Io {
        kind: e.kind(),
        message: e.to_string(),
    };
    // Before opening: opening a FIFO for reading blocks until a writer opens it.
    let meta = std::fs::metadata(path).map_err(io)?;
    regular(&meta)?;
    if meta.len() > max {
        return Err(BoundedReadError::TooLarge(max));
    }
    let file = std::fs::File::open(path).map_err(io)?;
    // The path may have been swapped for something else between the two calls.
    regular(&file.metadata().map_err(io)?)?;
    let mut data = Vec::new();
    file.take(max + 1).read_to_end(&mut data).map_err(io)?;
    if data.len() as u64 > max {
        return Err(BoundedReadError::TooLarge(max));
    }
    Ok(data)
}

impl From<BoundedReadError> for std::io::Error {
    fn from(e: BoundedReadError) -> Self {
        match e {
            BoundedReadError::Io { kind, message } => std::io::Error::new(kind, message),
            other => std::io::Error::other(other.to_string()),
        }
    }
}

/// [`read`], as UTF-8 text.
pub fn read_to_string(path: &Path, max: u64) -> Result<String, BoundedReadError> {
    String::from_utf8(read(path, max)?).map_err(|_| BoundedReadError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_up_to_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"12345").unwrap();
        assert_eq!(read(&f, 5).unwrap(), b"12345");
        assert_eq!(read(&f, 4).unwrap_err(), BoundedReadError::TooLarge(4));
        std::fs::write(&f, [0xff, 0xfe]).unwrap();
        assert_eq!(
            read_to_string(&f, 5).unwrap_err(),
            BoundedReadError::NotUtf8
        );
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert_eq!(read(&link, 5).unwrap(), [0xff, 0xfe]);
        assert_eq!(
            read(dir.path(), 5).unwrap_err(),
            BoundedReadError::NotRegular("directory")
        );
        assert!(matches!(
            read(&dir.path().join("missing"), 5),
            Err(BoundedReadError::Io {
                kind: std::io::ErrorKind::NotFound,
                ..
            })
        ));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn devices_and_fifos_are_refused_without_blocking() {
        assert_eq!(
            read(Path::new("/dev/zero"), 5).unwrap_err(),
            BoundedReadError::NotRegular("character device")
        );
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Opening the FIFO blocks (no writer comes): it must be refused before. Read on a thread, so that a
        // regression fails here instead of hanging the suite.
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || tx.send(read(&path, 5)));
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("reading a FIFO blocked");
        assert_eq!(got.unwrap_err(), BoundedReadError::NotRegular("FIFO"));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&fifo, &link).unwrap();
        assert_eq!(
            read(&link, 5).unwrap_err(),
            BoundedReadError::NotRegular("FIFO")
        );
    }
}
