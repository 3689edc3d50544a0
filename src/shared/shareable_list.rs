// long file: one type, ShareableList, with CPython's byte layout (header, formats, packing) and the checks that keep a corrupt segment from a peer an error
//! `ShareableList`: a fixed-length list of small values in named shared memory, byte for byte
//! the layout of Python's `multiprocessing.shared_memory.ShareableList`, so a Python process
//! attaches to a list made here by name (`ShareableList(name=...)`) and the other way round.
//!
//! The layout (CPython's, native byte order, every offset a multiple of 8):
//!
//! | bytes | what |
//! |---|---|
//! | 8 | the number of items `n` (`i64`) |
//! | `(n + 1) * 8` | the *offsets* of each item's slot from the start of the data area (`i64`), the last one the data area's size |
//! | `offsets[n]` | the data area: one slot per item, 8 bytes for `int`/`float`/`bool`/`None`, the byte length rounded up to the next multiple of 8 (at least one NUL more) for `str`/`bytes` |
//! | `n * 8` | each item's `struct` format, NUL-padded: `q`, `d`, `xxxxxxx?` (bool), `xxxxxx?x` (None), `<slot>s` (str, bytes) |
//! | `n` | each item's *back-transform code*: 0 int/float/bool, 1 str, 2 bytes, 3 None |
//!
//! Slots never move or grow: a `str`/`bytes` item may be replaced by a shorter or equal one, or
//! by a scalar, but never by a longer one. Python reads `str` and `bytes` items with their
//! trailing NUL bytes stripped, and so does this type: it is the same format.
//!
//! The layout (item count and offsets) is read and checked once, when the list is attached;
//! each `get` reads the item's format, code and value and checks them against that layout,
//! so a corrupt or hostile segment gives [`ShareableListError::Corrupt`], never a panic or a
//! read outside the segment.
//!
//! One difference with Python: Python sizes a `str` slot by its number of *characters*, so a
//! non-ASCII string can be silently truncated to invalid UTF-8 (which Python then fails to
//! decode); here slots are sized by the UTF-8 byte length, and the lists stay readable by
//! Python.

use std::fmt;
use std::io;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::shm::SharedMemory;

/// Every slot size and offset is a multiple of this (CPython's `_alignment`).
const ALIGN: usize = 8;
/// Each item's format is stored in 8 bytes, so a `<slot>s` format holds at most 7 digits: the
/// largest slot is the largest multiple of 8 below 10⁷.
const MAX_SLOT: usize = 9_999_992;
/// The back-transform codes of CPython's `_back_transforms_mapping`.
const CODE_SCALAR: u8 = 0;
const CODE_STR: u8 = 1;
const CODE_BYTES: u8 = 2;
const CODE_NONE: u8 = 3;
const FORMAT_INT: &[u8] = b"q";
const FORMAT_FLOAT: &[u8] = b"d";
const FORMAT_BOOL: &[u8] = b"xxxxxxx?";
const FORMAT_NONE: &[u8] = b"xxxxxx?x";

/// Errors of [`ShareableList`].
///
/// ```
/// use multiproc::{ShareableList, ShareableListError};
///
/// let list = ShareableList::new(["ab"])?;
/// let err = list.set(0, "longer than eight bytes").unwrap_err();
/// assert!(matches!(err, ShareableListError::DoesNotFit { index: 0, .. }));
/// list.unlink()?;
/// # Ok::<(), ShareableListError>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShareableListError {
    /// An index at or past the end (Python's `IndexError`).
    #[error("index {index} is out of range for a shareable list of {len} items")]
    IndexOutOfRange {
        /// The index asked for.
        index: usize,
        /// The list's length.
        len: usize,
    },
    /// A `str`/`bytes` value longer than the slot of the item it should replace (Python's
    /// `ValueError`). Slots keep the size they were created with.
    #[error(
        "item {index} needs {len} bytes but its slot holds {capacity}: a shareable list's items \
         never grow, so create the list with a placeholder at least this long"
    )]
    DoesNotFit {
        /// The item's index.
        index: usize,
        /// The encoded length of the value.
        len: usize,
        /// The slot's size in bytes.
        capacity: usize,
    },
    /// A `str`/`bytes` item too long for Python's format (its `<size>s` format must fit in 8
    /// bytes, which Python asserts).
    #[error(
        "item {index} is {len} bytes long; a shareable list item holds at most {max} bytes \
         (use a SharedMemory block for larger data)"
    )]
    ItemTooLarge {
        /// The item's index.
        index: usize,
        /// Its encoded length.
        len: usize,
        /// The longest item a list can hold.
        max: usize,
    },
    /// The segment does not hold a valid list (not one, or damaged by another process).
    #[error("shared memory {name:?} does not hold a valid shareable list: {reason}")]
    Corrupt {
        /// The segment's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Creating, attaching or unlinking the shared memory failed (`NotFound` when attaching
    /// to a name that does not exist).
    #[error("shareable list shared memory: {0}")]
    Io(#[from] io::Error),
}

/// One item of a [`ShareableList`]: the types Python's `ShareableList` can hold.
///
/// Conversions exist from the plain Rust types, so lists of one type need no spelling out:
///
/// ```
/// use multiproc::ShareableItem;
///
/// assert_eq!(ShareableItem::from(3), ShareableItem::Int(3));
/// assert_eq!(ShareableItem::from("a"), ShareableItem::Str("a".into()));
/// assert_eq!(ShareableItem::from(None::<i64>), ShareableItem::None);
/// let mixed = [ShareableItem::Int(1), 2.5.into(), true.into(), b"raw".as_slice().into()];
/// assert_eq!(mixed[1], ShareableItem::Float(2.5));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ShareableItem {
    /// Python `int` (within `i64`, format `q`).
    Int(i64),
    /// Python `float` (format `d`).
    Float(f64),
    /// Python `bool` (format `xxxxxxx?`).
    Bool(bool),
    /// Python `str`, UTF-8 (trailing NULs are not kept, as in Python).
    Str(String),
    /// Python `bytes` (trailing NULs are not kept, as in Python).
    Bytes(Vec<u8>),
    /// Python `None`.
    None,
}

impl From<i64> for ShareableItem {
    fn from(v: i64) -> Self {
        ShareableItem::Int(v)
    }
}

impl From<i32> for ShareableItem {
    fn from(v: i32) -> Self {
        ShareableItem::Int(v.into())
    }
}

impl From<u32> for ShareableItem {
    fn from(v: u32) -> Self {
        ShareableItem::Int(v.into())
    }
}

impl From<f64> for ShareableItem {
    fn from(v: f64) -> Self {
        ShareableItem::Float(v)
    }
}

impl From<bool> for ShareableItem {
    fn from(v: bool) -> Self {
        ShareableItem::Bool(v)
    }
}

impl From<&str> for ShareableItem {
    fn from(v: &str) -> Self {
        ShareableItem::Str(v.to_string())
    }
}

impl From<String> for ShareableItem {
    fn from(v: String) -> Self {
        ShareableItem::Str(v)
    }
}

impl From<&[u8]> for ShareableItem {
    fn from(v: &[u8]) -> Self {
        ShareableItem::Bytes(v.to_vec())
    }
}

impl From<Vec<u8>> for ShareableItem {
    fn from(v: Vec<u8>) -> Self {
        ShareableItem::Bytes(v)
    }
}

impl<T: Into<ShareableItem>> From<Option<T>> for ShareableItem {
    fn from(v: Option<T>) -> Self {
        v.map_or(ShareableItem::None, Into::into)
    }
}

impl ShareableItem {
    /// The bytes a `str`/`bytes` item stores (`None` for the scalars).
    fn payload(&self) -> Option<&[u8]> {
        match self {
            ShareableItem::Str(s) => Some(s.as_bytes()),
            ShareableItem::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The slot a new list gives this item: CPython's `8 * (len // 8 + 1)` for `str`/`bytes`
    /// (always at least one NUL of room), 8 bytes otherwise.
    fn slot_size(&self, index: usize) -> Result<usize, ShareableListError> {
        let Some(payload) = self.payload() else {
            return Ok(ALIGN);
        };
        let slot = (payload.len() / ALIGN + 1) * ALIGN;
        if slot > MAX_SLOT {
            return Err(ShareableListError::ItemTooLarge {
                index,
                len: payload.len(),
                max: MAX_SLOT - 1,
            });
        }
        Ok(slot)
    }

    /// The format, back-transform code and value bytes of this item in a slot of `slot`
    /// bytes.
    fn pack(&self, index: usize, slot: usize) -> Result<Packed, ShareableListError> {
        let fixed = |format: &[u8], code: u8, value: [u8; 8]| Packed {
            format: format_bytes(format),
            code,
            value: value.to_vec(),
        };
        Ok(match self {
            ShareableItem::Int(v) => fixed(FORMAT_INT, CODE_SCALAR, v.to_ne_bytes()),
            ShareableItem::Float(v) => fixed(FORMAT_FLOAT, CODE_SCALAR, v.to_ne_bytes()),
            ShareableItem::Bool(v) => fixed(
                FORMAT_BOOL,
                CODE_SCALAR,
                [0, 0, 0, 0, 0, 0, 0, u8::from(*v)],
            ),
            // Python packs `bool(None)`, i.e. a zero byte, with `xxxxxx?x`.
            ShareableItem::None => fixed(FORMAT_NONE, CODE_NONE, [0; 8]),
            ShareableItem::Str(_) | ShareableItem::Bytes(_) => {
                let payload = self.payload().unwrap_or_default();
                if payload.len() > slot {
                    return Err(ShareableListError::DoesNotFit {
                        index,
                        len: payload.len(),
                        capacity: slot,
                    });
                }
                // `struct.pack_into("<slot>s")` NUL-pads to the whole slot.
                let mut value = vec![0; slot];
                value[..payload.len()].copy_from_slice(payload);
                let code = if matches!(self, ShareableItem::Str(_)) {
                    CODE_STR
                } else {
                    CODE_BYTES
                };
                Packed {
                    format: format_bytes(format!("{slot}s").as_bytes()),
                    code,
                    value,
                }
            }
        })
    }
}

/// What one item writes into the segment.
struct Packed {
    format: [u8; 8],
    code: u8,
    value: Vec<u8>,
}

/// A format NUL-padded to its 8-byte field (callers pass at most 8 bytes: the fixed formats,
/// or `<slot>s` with `slot <= MAX_SLOT`).
fn format_bytes(format: &[u8]) -> [u8; 8] {
    let mut field = [0; 8];
    let len = format.len().min(8);
    field[..len].copy_from_slice(&format[..len]);
    field
}

/// Where everything is, from the item count and offsets (read once, checked).
#[derive(Debug, Clone)]
struct Layout {
    /// `offsets[i]..offsets[i + 1]` is item `i`'s slot, relative to the data area.
    offsets: Vec<usize>,
}

impl Layout {
    fn for_items(items: &[ShareableItem]) -> Result<Layout, ShareableListError> {
        let mut offsets = Vec::with_capacity(items.len() + 1);
        offsets.push(0);
        let mut end = 0usize;
        for (index, item) in items.iter().enumerate() {
            end += item.slot_size(index)?;
            offsets.push(end);
        }
        Ok(Layout { offsets })
    }

    fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// The count and the `n + 1` offsets come first.
    fn data_start(&self) -> usize {
        (self.len() + 2) * ALIGN
    }

    fn formats_start(&self) -> usize {
        self.data_start() + self.offsets[self.len()]
    }

    fn codes_start(&self) -> usize {
        self.formats_start() + self.len() * 8
    }

    /// The segment size this layout needs (CPython's `requested_size`).
    fn size(&self) -> usize {
        self.codes_start() + self.len()
    }

    /// Item `index`'s slot: its absolute offset and size (`index < len`).
    fn slot(&self, index: usize) -> (usize, usize) {
        let start = self.offsets[index];
        (self.data_start() + start, self.offsets[index + 1] - start)
    }

    /// The header as CPython writes it: count, then offsets, as native `i64`s.
    fn header(&self) -> Vec<u8> {
        let mut header = Vec::with_capacity(self.data_start());
        header.extend_from_slice(&(self.len() as i64).to_ne_bytes());
        for &offset in &self.offsets {
            header.extend_from_slice(&(offset as i64).to_ne_bytes());
        }
        header
    }

    /// Read and check the layout of an existing list. Everything is bounded by the segment's
    /// size before anything is allocated or indexed.
    fn read(shm: &SharedMemory) -> Result<Layout, ShareableListError> {
        let corrupt = |reason: String| ShareableListError::Corrupt {
            name: shm.name().to_string(),
            reason,
        };
        let size = shm.size();
        let count = read_i64(shm, 0).map_err(|_| {
            corrupt(format!(
                "{size} bytes are too few for the item count (8 bytes)"
            ))
        })?;
        let len = usize::try_from(count)
            .ok()
            .filter(|&n| n <= size / ALIGN)
            .ok_or_else(|| {
                corrupt(format!(
                    "an item count of {count} does not fit in {size} bytes"
                ))
            })?;
        // `len <= size / 8`, so none of the sums below overflow.
        if (len + 2) * ALIGN > size {
            return Err(corrupt(format!(
                "the offsets of {len} items do not fit in {size} bytes"
            )));
        }
        let mut offsets = Vec::with_capacity(len + 1);
        for i in 0..=len {
            let raw = read_i64(shm, (i + 1) * ALIGN)?;
            let offset = usize::try_from(raw)
                .ok()
                .filter(|&o| o <= size)
                .ok_or_else(|| corrupt(format!("offset {i} is {raw}, outside the segment")))?;
            offsets.push(offset);
        }
        if offsets[0] != 0 {
            return Err(corrupt(format!(
                "the first offset is {}, not 0",
                offsets[0]
            )));
        }
        for (i, pair) in offsets.windows(2).enumerate() {
            let slot = pair[1].checked_sub(pair[0]);
            if !slot.is_some_and(|s| s >= ALIGN && s.is_multiple_of(ALIGN)) {
                return Err(corrupt(format!(
                    "item {i}'s slot runs from {} to {}: not a positive multiple of 8 bytes",
                    pair[0], pair[1]
                )));
            }
        }
        let layout = Layout { offsets };
        // Offsets are at most `size` each and `len <= size / 8`: no overflow.
        if layout.size() > size {
            return Err(corrupt(format!(
                "{len} items with {} data bytes need {} bytes, the segment has {size}",
                layout.offsets[len],
                layout.size()
            )));
        }
        Ok(layout)
    }
}

fn read_i64(shm: &SharedMemory, offset: usize) -> io::Result<i64> {
    let mut bytes = [0; 8];
    shm.load_at(offset, &mut bytes)?;
    Ok(i64::from_ne_bytes(bytes))
}

/// A fixed-length list of `int`, `float`, `bool`, `str`, `bytes` and `None` items in named
/// shared memory, in the exact layout of Python's `multiprocessing.shared_memory.ShareableList`:
/// Python attaches with `ShareableList(name=list.name())`, and [`attach`](Self::attach) opens
/// a list Python made.
///
/// Items are read and written by index with [`get`](Self::get) and [`set`](Self::set). The
/// length is fixed, and a `str`/`bytes` item can only be replaced by a value no longer than its
/// slot (its original length rounded up to the next multiple of 8, one NUL included).
///
/// **Not synchronized**, exactly like Python's: `set` writes the item's format, its type code
/// and then its bytes, with no lock, so a process that reads an item while another writes it
/// can see a mix of old and new (an error, or a wrong value, never undefined behaviour: every
/// byte is copied with a relaxed atomic access, then checked). When several processes write,
/// guard the list with a [`Lock`](crate::Lock).
///
/// The segment is a [`SharedMemory`], with the same lifetime rules: [`unlink`](Self::unlink)
/// removes the name, the resource tracker does it if the creator forgets or dies, and
/// [`SharedMemoryManager`](crate::SharedMemoryManager) unlinks all of its lists at once.
///
/// ```
/// use multiproc::{Process, ShareableItem, ShareableList};
///
/// fn double_first(name: String) {
///     let list = ShareableList::attach(&name).unwrap();
///     if let Ok(ShareableItem::Int(n)) = list.get(0) {
///         list.set(0, n * 2).unwrap();
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let list = ShareableList::new([
///     ShareableItem::Int(21),
///     ShareableItem::from("howdy"),
///     ShareableItem::None,
/// ])?;
/// Process::start(double_first, list.name().to_string())?.join()?;
/// assert_eq!(list.get(0)?, ShareableItem::Int(42));
/// assert_eq!(list.format()?, "q8sxxxxxx?x");
/// list.unlink()?;
/// # Ok(())
/// # }
/// ```
pub struct ShareableList {
    shm: SharedMemory,
    layout: Layout,
}

impl ShareableList {
    /// Create a list holding `items`, in a segment with a fresh unique name.
    ///
    /// ```
    /// let list = multiproc::ShareableList::new([1, 2, 3])?;
    /// assert_eq!(list.len(), 3);
    /// list.unlink()?;
    /// # Ok::<(), multiproc::ShareableListError>(())
    /// ```
    pub fn new<I>(items: I) -> Result<ShareableList, ShareableListError>
    where
        I: IntoIterator,
        I::Item: Into<ShareableItem>,
    {
        let items: Vec<ShareableItem> = items.into_iter().map(Into::into).collect();
        let layout = Layout::for_items(&items)?;
        ShareableList::fill(SharedMemory::create(layout.size())?, layout, &items)
    }

    /// Create a list holding `items` in a segment named `name` (an error of kind
    /// `AlreadyExists` if that name exists).
    ///
    /// ```
    /// use multiproc::ShareableList;
    ///
    /// let name = format!("multiproc-doc-list-{}", std::process::id());
    /// let list = ShareableList::create_named(&name, ["a", "b"])?;
    /// assert_eq!(list.name(), name);
    /// list.unlink()?;
    /// # Ok::<(), multiproc::ShareableListError>(())
    /// ```
    pub fn create_named<I>(name: &str, items: I) -> Result<ShareableList, ShareableListError>
    where
        I: IntoIterator,
        I::Item: Into<ShareableItem>,
    {
        let items: Vec<ShareableItem> = items.into_iter().map(Into::into).collect();
        let layout = Layout::for_items(&items)?;
        ShareableList::fill(
            SharedMemory::create_named(name, layout.size())?,
            layout,
            &items,
        )
    }

    /// Write a new list into a fresh segment; unlink it if that fails.
    fn fill(
        shm: SharedMemory,
        layout: Layout,
        items: &[ShareableItem],
    ) -> Result<ShareableList, ShareableListError> {
        let write = || -> Result<(), ShareableListError> {
            shm.store_at(0, &layout.header())?;
            for (index, item) in items.iter().enumerate() {
                let (offset, slot) = layout.slot(index);
                let packed = item.pack(index, slot)?;
                shm.store_at(layout.formats_start() + index * 8, &packed.format)?;
                shm.store_at(layout.codes_start() + index, &[packed.code])?;
                shm.store_at(offset, &packed.value)?;
            }
            Ok(())
        };
        if let Err(e) = write() {
            let _ = shm.unlink();
            return Err(e);
        }
        Ok(ShareableList { shm, layout })
    }

    /// Attach to an existing list by name (made here or by Python); its layout is checked
    /// against the segment's size first.
    ///
    /// ```
    /// use multiproc::{ShareableItem, ShareableList};
    ///
    /// let made = ShareableList::new([1.5])?;
    /// let seen = ShareableList::attach(made.name())?;
    /// assert_eq!(seen.get(0)?, ShareableItem::Float(1.5));
    /// made.unlink()?;
    /// # Ok::<(), multiproc::ShareableListError>(())
    /// ```
    pub fn attach(name: &str) -> Result<ShareableList, ShareableListError> {
        ShareableList::from_shared_memory(SharedMemory::attach(name)?)
    }

    /// A list over a segment already attached (checked like [`attach`](Self::attach)).
    fn from_shared_memory(shm: SharedMemory) -> Result<ShareableList, ShareableListError> {
        let layout = Layout::read(&shm)?;
        Ok(ShareableList { shm, layout })
    }

    /// The number of items (fixed when the list was created).
    ///
    /// ```
    /// let list = multiproc::ShareableList::new(["x"; 4])?;
    /// assert_eq!(list.len(), 4);
    /// list.unlink()?;
    /// # Ok::<(), multiproc::ShareableListError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.layout.len()
    }

    /// Whether the list has no items.
    ///
    /// ```
    /// let list = multiproc::ShareableList::new(Vec::<i64>::new())?;
    /// assert!(list.is_empty());
    /// list.unlink()?;
    /// # Ok::<(), multiproc::ShareableListError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The segment's name, for [`attach`](Self::attach) or Python's
    /// `ShareableList(name=...)`.
    ///
    /// ```
    /// let list = multiproc::ShareableList::new([true])?;
    /// assert!(list.name().starts_with("multiproc-"));
    /// list.unlink()?;
    /// # Ok::<(), multiproc::ShareableListError>(())
    /// ```
    pub fn name(&self) -> &str {
        self.shm.name()
    }

    /// The shared memory block holding the list (Python's `list.shm`).
    ///
    /// ```
    /// let list = multiproc::ShareableList::new([1])?;
    /// assert_eq!(list.shm().size(), 8 * 3 + 8 + 8 + 1);
    /// list.unlink()?;
    /// # Ok::<(), multiproc::ShareableListError>(())
    /// ```
    pub fn shm(&self) -> &SharedMemory {
        &self.shm
    }

    /// Item `index` (Python's `list[index]`, for non-negative indices).
    ///
    /// ```
    /// use multiproc::{ShareableItem, ShareableList, ShareableListError};
    ///
    /// let list = ShareableList::new(["tea"])?;
    /// assert_eq!(list.get(0)?, ShareableItem::Str("tea".into()));
    /// assert!(matches!(list.get(1), Err(ShareableListError::IndexOutOfRange { index: 1, len: 1 })));
    /// list.unlink()?;
    /// # Ok::<(), ShareableListError>(())
    /// ```
    pub fn get(&self, index: usize) -> Result<ShareableItem, ShareableListError> {
        self.check_index(index)?;
        let mut format = [0; 8];
        self.shm
            .load_at(self.layout.formats_start() + index * 8, &mut format)?;
        let mut code = [0];
        self.shm
            .load_at(self.layout.codes_start() + index, &mut code)?;
        let format = trim_nuls(&format);
        let (offset, slot) = self.layout.slot(index);
        let corrupt = |what: &str| ShareableListError::Corrupt {
            name: self.name().to_string(),
            reason: format!(
                "item {index} has {what} (format {:?}, type code {})",
                String::from_utf8_lossy(format),
                code[0]
            ),
        };
        let scalar = || -> Result<[u8; 8], ShareableListError> {
            let mut value = [0; 8];
            self.shm.load_at(offset, &mut value)?;
            Ok(value)
        };
        match code[0] {
            CODE_SCALAR if format == FORMAT_INT => {
                Ok(ShareableItem::Int(i64::from_ne_bytes(scalar()?)))
            }
            CODE_SCALAR if format == FORMAT_FLOAT => {
                Ok(ShareableItem::Float(f64::from_ne_bytes(scalar()?)))
            }
            CODE_SCALAR if format == FORMAT_BOOL => Ok(ShareableItem::Bool(scalar()?[7] != 0)),
            // Python ignores the bytes of a `None` item.
            CODE_NONE => Ok(ShareableItem::None),
            CODE_STR | CODE_BYTES => {
                let size = format
                    .strip_suffix(b"s")
                    .and_then(|digits| std::str::from_utf8(digits).ok())
                    .and_then(|digits| digits.parse::<usize>().ok())
                    .filter(|&size| size <= slot)
                    .ok_or_else(|| corrupt("a format that is not a string that fits its slot"))?;
                let mut value = vec![0; size];
                self.shm.load_at(offset, &mut value)?;
                value.truncate(trim_nuls(&value).len());
                if code[0] == CODE_BYTES {
                    return Ok(ShareableItem::Bytes(value));
                }
                String::from_utf8(value)
                    .map(ShareableItem::Str)
                    .map_err(|_| corrupt("a str value that is not UTF-8"))
            }
            _ => Err(corrupt("an unknown format or type code")),
        }
    }

    /// Replace item `index` (Python's `list[index] = value`). A `str`/`bytes` value must fit
    /// the item's slot ([`ShareableListError::DoesNotFit`] otherwise); any item may become
    /// an `int`, `float`, `bool` or `None`.
    ///
    /// ```
    /// use multiproc::{ShareableItem, ShareableList};
    ///
    /// let list = ShareableList::new(["seven b", "x"])?;
    /// list.set(0, 7)?;
    /// list.set(1, "ok")?;
    /// assert_eq!(list.to_vec()?, [ShareableItem::Int(7), ShareableItem::from("ok")]);
    /// assert!(list.set(1, "much too long").is_err());
    /// list.unlink()?;
    /// # Ok::<(), multiproc::ShareableListError>(())
    /// ```
    pub fn set(
        &self,
        index: usize,
        value: impl Into<ShareableItem>,
    ) -> Result<(), ShareableListError> {
        self.check_index(index)?;
        let (offset, slot) = self.layout.slot(index);
        let packed = value.into().pack(index, slot)?;
        // Python's order: format and type code first, then the value.
        self.shm
            .store_at(self.layout.formats_start() + index * 8, &packed.format)?;
        self.shm
            .store_at(self.layout.codes_start() + index, &[packed.code])?;
        self.shm.store_at(offset, &packed.value)?;
        Ok(())
    }

    /// Every item, in order (Python's `list(shareable_list)`).
    ///
    /// ```
    /// use multiproc::{ShareableItem, ShareableList};
    ///
    /// let list = ShareableList::new([Some(1), None])?;
    /// assert_eq!(list.to_vec()?, [ShareableItem::Int(1), ShareableItem::None]);
    /// list.unlink()?;
    /// # Ok::<(), multiproc::ShareableListError>(())
    /// ```
    pub fn to_vec(&self) -> Result<Vec<ShareableItem>, ShareableListError> {
        self.iter().collect()
    }

    /// The items, each read when the iterator reaches it.
    ///
    /// ```
    /// let list = multiproc::ShareableList::new([1, 2, 3])?;
    /// let ints = list.iter().filter(|item| matches!(item, Ok(multiproc::ShareableItem::Int(_))));
    /// assert_eq!(ints.count(), 3);
    /// list.unlink()?;
    /// # Ok::<(), multiproc::ShareableListError>(())
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = Result<ShareableItem, ShareableListError>> + '_ {
        (0..self.len()).map(|index| self.get(index))
    }

    /// The `struct` packing format of all items as they are now (Python's `list.format`).
    ///
    /// ```
    /// use multiproc::{ShareableItem, ShareableList};
    ///
    /// let list = ShareableList::new([ShareableItem::Int(1), 2.0.into(), false.into()])?;
    /// assert_eq!(list.format()?, "qdxxxxxxx?");
    /// list.unlink()?;
    /// # Ok::<(), multiproc::ShareableListError>(())
    /// ```
    pub fn format(&self) -> Result<String, ShareableListError> {
        let mut formats = vec![0; self.len() * 8];
        self.shm
            .load_at(self.layout.formats_start(), &mut formats)?;
        let mut all = String::new();
        for (index, field) in formats.chunks_exact(8).enumerate() {
            let format =
                std::str::from_utf8(trim_nuls(field)).map_err(|_| ShareableListError::Corrupt {
                    name: self.name().to_string(),
                    reason: format!("item {index}'s format is not text"),
                })?;
            all.push_str(format);
        }
        Ok(all)
    }

    /// Unmap the list from this process (dropping it does the same; Python's
    /// `list.shm.close()`).
    ///
    /// ```
    /// use multiproc::ShareableList;
    ///
    /// let list = ShareableList::new([1])?;
    /// let name = list.name().to_string();
    /// list.close();
    /// ShareableList::attach(&name)?.unlink()?;
    /// # Ok::<(), multiproc::ShareableListError>(())
    /// ```
    pub fn close(self) {}

    /// Remove the name from `/dev/shm` (Python's `list.shm.unlink()`); mappings stay valid.
    ///
    /// ```
    /// use multiproc::ShareableList;
    ///
    /// let list = ShareableList::new([1])?;
    /// list.unlink()?;
    /// assert!(ShareableList::attach(list.name()).is_err());
    /// # Ok::<(), multiproc::ShareableListError>(())
    /// ```
    pub fn unlink(&self) -> Result<(), ShareableListError> {
        Ok(self.shm.unlink()?)
    }

    fn check_index(&self, index: usize) -> Result<(), ShareableListError> {
        if index >= self.len() {
            return Err(ShareableListError::IndexOutOfRange {
                index,
                len: self.len(),
            });
        }
        Ok(())
    }
}

/// Python's `rstrip(b'\x00')`.
fn trim_nuls(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &bytes[..end]
}

impl fmt::Debug for ShareableList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShareableList")
            .field("name", &self.name())
            .field("len", &self.len())
            .finish()
    }
}

/// A list travels to another process as its segment (a handle, like [`SharedMemory`]); the
/// receiver checks the layout again.
impl Serialize for ShareableList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.shm.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ShareableList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ShareableList::from_shared_memory(SharedMemory::deserialize(d)?)
            .map_err(serde::de::Error::custom)
    }
}
