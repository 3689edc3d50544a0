//! The running executable's identity and code range, read from its program headers
//! (`dl_iterate_phdr`): code found by address in another process (task entry points, pool
//! tasks, barrier actions, manager types) is accepted only from a process that runs the
//! same build, and only at an address inside this executable's code.

use std::sync::OnceLock;

/// What this process knows about its main executable.
#[derive(Debug, Default)]
pub struct Image {
    /// The ELF build-id note (`NT_GNU_BUILD_ID`), if the linker wrote one.
    pub build_id: Option<Vec<u8>>,
    /// Address ranges `[start, end)` of the executable's loaded, executable segments.
    pub code: Vec<(usize, usize)>,
}

impl Image {
    /// Whether `address` lies inside the executable's code.
    pub fn contains_code(&self, address: usize) -> bool {
        self.code.iter().any(|&(s, e)| (s..e).contains(&address))
    }
}

/// The main executable of this process (computed once).
pub fn main_image() -> &'static Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE.get_or_init(read_main_image)
}

const NT_GNU_BUILD_ID: u32 = 3;

fn read_main_image() -> Image {
    unsafe extern "C" fn first(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the `&mut Image` passed below, alive for the whole iteration;
        // `info` is valid for this call (dl_iterate_phdr's contract), and its `dlpi_phdr`
        // points to `dlpi_phnum` program headers of an object mapped at `dlpi_addr`, whose
        // PT_NOTE and PT_LOAD ranges are mapped and readable.
        unsafe {
            let image = &mut *data.cast::<Image>();
            let info = &*info;
            let base = info.dlpi_addr as usize;
            let headers = std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum));
            for h in headers {
                let start = base.wrapping_add(h.p_vaddr as usize);
                match h.p_type {
                    libc::PT_LOAD if h.p_flags & libc::PF_X != 0 => {
                        image
                            .code
                            .push((start, start.saturating_add(h.p_memsz as usize)));
                    }
                    libc::PT_NOTE if image.build_id.is_none() => {
                        let notes =
                            std::slice::from_raw_parts(start as *const u8, h.p_memsz as usize);
                        image.build_id = find_build_id(notes);
                    }
                    _ => {}
                }
            }
        }
        1 // the first object is the main program: stop there
    }
    let mut image = Image::default();
    // SAFETY: the callback only reads what dl_iterate_phdr hands it and writes `image`,
    // which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(first), (&raw mut image).cast()) };
    image
}

/// The descriptor of the `GNU` build-id note in a PT_NOTE segment's bytes.
fn find_build_id(mut notes: &[u8]) -> Option<Vec<u8>> {
    let word = |b: &[u8], i: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(b.get(i..i + 4)?.try_into().ok()?))
    };
    while notes.len() >= 12 {
        let namesz = word(notes, 0)? as usize;
        let descsz = word(notes, 4)? as usize;
        let kind = word(notes, 8)?;
        let name_end = 12usize.checked_add(namesz.next_multiple_of(4))?;
        let desc_end = name_end.checked_add(descsz.next_multiple_of(4))?;
        let name = notes.get(12..12 + namesz)?;
        if kind == NT_GNU_BUILD_ID && name == b"GNU\0" {
            return notes.get(name_end..name_end + descsz).map(<[u8]>::to_vec);
        }
        notes = notes.get(desc_end..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_main_image_has_code_containing_this_function() {
        let image = main_image();
        let here = the_main_image_has_code_containing_this_function as fn() as usize;
        assert!(image.contains_code(here), "{image:?}");
        assert!(!image.contains_code(0));
    }

    #[test]
    fn build_id_notes_are_parsed_and_garbage_is_not() {
        let mut note = Vec::new();
        note.extend_from_slice(&4u32.to_ne_bytes());
        note.extend_from_slice(&3u32.to_ne_bytes());
        note.extend_from_slice(&3u32.to_ne_bytes());
        note.extend_from_slice(b"GNU\0");
        note.extend_from_slice(&[1, 2, 3, 0]);
        assert_eq!(find_build_id(&note), Some(vec![1, 2, 3]));
        assert_eq!(find_build_id(&[0xff; 40]), None);
        assert_eq!(find_build_id(&[]), None);
    }
}
