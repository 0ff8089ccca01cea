//! OCI image layouts (`palisade push` of a layout directory or tar): read into images or an
//! error naming the file, never a panic.
//!
//! Input: any tar; or a layout written as sections, each starting with a line `--- <path>`:
//! `--- blob` sections become `blobs/sha256/<their digest>`, and in every later section `$N`
//! stands for the digest of blob N and `$#N` for its size, so that index and manifests can
//! point at real blobs.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use palisade_oci::layout::read_tar;
use sha2::{Digest, Sha256};

fn substitute(text: &str, blobs: &[(String, usize)]) -> String {
    let mut out = text.to_owned();
    for (i, (digest, size)) in blobs.iter().enumerate().rev() {
        out = out.replace(&format!("$#{i}"), &size.to_string());
        out = out.replace(&format!("${i}"), digest);
    }
    out
}

fn append(builder: &mut tar::Builder<Vec<u8>>, path: &str, bytes: &[u8]) {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    // A path tar cannot hold (too long, `..`) leaves the entry out.
    let _ = builder.append_data(&mut header, path, Cursor::new(bytes));
}

fn layout(text: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut blobs: Vec<(String, usize)> = Vec::new();
    for section in text.split("--- ").skip(1) {
        let (path, body) = section.split_once('\n').unwrap_or((section, ""));
        let body = substitute(body.trim_end_matches('\n'), &blobs);
        if path.trim() == "blob" {
            let hex = hex::encode(Sha256::digest(body.as_bytes()));
            append(
                &mut builder,
                &format!("blobs/sha256/{hex}"),
                body.as_bytes(),
            );
            blobs.push((format!("sha256:{hex}"), body.len()));
        } else {
            append(&mut builder, path.trim(), body.as_bytes());
        }
    }
    builder.into_inner().unwrap_or_default()
}

fuzz_target!(|data: &[u8]| {
    let bytes = match std::str::from_utf8(data) {
        Ok(text) if text.starts_with("--- ") => layout(text),
        _ => data.to_vec(),
    };
    if let Ok(entries) = read_tar(&bytes) {
        for entry in &entries {
            assert!(entry.image.digest().starts_with("sha256:"));
        }
    }
});
