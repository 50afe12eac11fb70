//! Objects written as one pack (with its index) into a repository: the notes writer's batches and hydrate's
//! output commits, each written at once instead of object by object.

/// Write objects (e.g. those a `with_object_memory()` repository collected) as one pack, with its index,
/// into the repository's `objects/pack`. Also used by hydrate for its output commits.
pub fn write_pack(
    repo: &gix::Repository,
    objects: &gix::odb::memory::Storage,
) -> Result<(), String> {
    use gix::odb::pack;
    // One compressor for the whole pack, reset for each object (creating one costs more than compressing a
    // note).
    let mut z = gix::zlib::stream::deflate::Compress::new(gix::zlib::Compression::BEST_SPEED);
    let mut chunk = vec![0u8; 32 * 1024];
    let mut data = Vec::with_capacity(
        objects
            .values()
            .map(|(_, d)| d.len() / 2 + 16)
            .sum::<usize>()
            + 32,
    );
    data.extend_from_slice(b"PACK");
    data.extend_from_slice(&2u32.to_be_bytes());
    let count =
        u32::try_from(objects.len()).map_err(|_| "too many objects for one pack".to_string())?;
    data.extend_from_slice(&count.to_be_bytes());
    for (kind, body) in objects.values() {
        let type_id: u8 = match kind {
            gix::object::Kind::Commit => 1,
            gix::object::Kind::Tree => 2,
            gix::object::Kind::Blob => 3,
            gix::object::Kind::Tag => 4,
        };
        // Entry header: type and size, little-endian base-128 (4 bits of size in the first byte).
        let mut size = body.len();
        let mut byte = (type_id << 4) | (size & 0x0f) as u8;
        size >>= 4;
        while size > 0 {
            data.push(byte | 0x80);
            byte = (size & 0x7f) as u8;
            size >>= 7;
        }
        data.push(byte);
        deflate_into(&mut z, &mut chunk, body, &mut data)?;
    }
    let mut hasher = gix::hash::hasher(repo.object_hash());
    hasher.update(&data);
    let trailer = hasher.try_finalize().map_err(|e| e.to_string())?;
    data.extend_from_slice(trailer.as_bytes());
    let dir = repo.common_dir().join("objects").join("pack");
    pack::Bundle::write_to_directory(
        &mut &data[..],
        Some(&dir),
        &mut gix::progress::Discard,
        &std::sync::atomic::AtomicBool::new(false),
        None::<gix::OdbHandle>,
        repo.object_hash(),
        pack::bundle::write::Options::default(),
    )
    .map_err(|e| format!("cannot write pack to {}: {e}", dir.display()))?;
    Ok(())
}

/// `body` as one zlib stream appended to `out`, with `z` reset first.
fn deflate_into(
    z: &mut gix::zlib::stream::deflate::Compress,
    chunk: &mut [u8],
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    use gix::zlib::stream::deflate::FlushCompress;
    z.reset();
    let mut input = body;
    loop {
        let (read, wrote) = (z.total_in(), z.total_out());
        let status = z
            .compress(input, chunk, FlushCompress::Finish)
            .map_err(|e| e.to_string())?;
        let written = usize::try_from(z.total_out() - wrote).map_err(|e| e.to_string())?;
        let consumed = usize::try_from(z.total_in() - read).map_err(|e| e.to_string())?;
        out.extend_from_slice(&chunk[..written]);
        input = &input[consumed..];
        match status {
            gix::zlib::Status::StreamEnd => return Ok(()),
            _ if written == 0 && consumed == 0 => {
                return Err("zlib made no progress compressing an object".to_string());
            }
            _ => {}
        }
    }
}
