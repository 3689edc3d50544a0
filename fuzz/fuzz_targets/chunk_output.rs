//! A pool worker's chunk result as the parent decodes it (`ChunkOutput<R>`: the failed items,
//! then the values, packed when `R` is a primitive number; `src/pool/packed.rs`), from bytes
//! a corrupted result ring could hold. Input: `[type][bytes...]`; the type picks `R` among
//! the packed forms (varints, zigzag varints, one byte, fixed-width floats) and two plain
//! ones.
//!
//! Checks: no panic, hang or allocation the bytes do not justify (at most one value per
//! byte); a decoded chunk encodes back and decodes again to the same values.

#![no_main]

use libfuzzer_sys::fuzz_target;
use multiproc::fuzzing::{decode_chunk_output, encode_chunk_output};

fn check<R>(bytes: &[u8])
where
    R: multiproc::TaskOutput + Clone + std::fmt::Debug + PartialEq,
{
    let Ok((values, failures)) = decode_chunk_output::<R>(bytes) else {
        return;
    };
    assert!(
        values.len() + failures <= bytes.len(),
        "{} values and {failures} failures from {} bytes",
        values.len(),
        bytes.len()
    );
    let again = encode_chunk_output(&values);
    let (back, none) = decode_chunk_output::<R>(&again).expect("our own encoding decodes");
    assert_eq!(none, 0);
    // Compared bit for bit, so that NaN equals itself.
    assert_eq!(format!("{back:?}"), format!("{values:?}"));
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    match kind % 8 {
        0 => check::<u64>(bytes),
        1 => check::<i32>(bytes),
        2 => check::<u8>(bytes),
        3 => check::<i16>(bytes),
        4 => check::<f64>(bytes),
        5 => check::<f32>(bytes),
        6 => check::<String>(bytes),
        _ => check::<(u16, i64)>(bytes),
    }
});
