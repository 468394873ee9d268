//! Reader for official PyTorch checkpoints (`torch.save` zip format), from an
//! in-memory byte slice so that it works the same natively and on wasm32.
//!
//! A `torch.save` file is a zip archive with one top-level folder (its name
//! varies) holding `data.pkl`, a pickle of the saved object, and one file
//! `data/<key>` per tensor storage. Inside the pickle every tensor is
//! `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`
//! where `storage` is a persistent id
//! `('storage', torch.FloatStorage, key, location, numel)`.
//!
//! The state dict is either the pickled object itself (an `OrderedDict` of
//! name -> tensor) or the dict under `"model"` (MedSAM2 / SAM2 training
//! checkpoints: `{"model": state_dict, "epoch": .., "optimizer": ..}`); entries
//! that are not tensors are ignored.
//!
//! Why a hand-written pickle VM rather than a crate: `serde-pickle` has no
//! persistent-id support (BINPERSID) and cannot call arbitrary globals such as
//! `_rebuild_tensor_v2` (unknown globals either fail or become `None`), and
//! `pytorch-reader` (burn-store's backend) reads checkpoints with tensors only
//! from file paths and brings a second major version of `zip`. The subset of
//! pickle that `torch.save` emits is small, so it is interpreted here, with
//! every read bounds-checked: malformed input is an error, never a panic.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::io::{Cursor, Read};
use std::rc::Rc;

use safetensors::Dtype;
use zip::CompressionMethod;
use zip::result::ZipError;

use super::safetensors_io::decode_to_f32;
use super::{HostTensor, TensorStore, WeightError, collect_f32, f32_buffer};

const FORMAT: &str = "PyTorch checkpoint";

/// Keys of a top-level dict under which training checkpoints keep the state dict.
const NESTED_STATE_DICT_KEYS: [&str; 2] = ["model", "state_dict"];

/// Deepest nesting of wrapper calls (`_rebuild_from_type_v2` and the like).
const MAX_CALL_DEPTH: usize = 8;

fn err(reason: impl Into<String>) -> WeightError {
    WeightError::Format {
        format: FORMAT,
        reason: reason.into(),
    }
}

/// Reads every tensor of the state dict in a `torch.save` zip checkpoint.
pub fn read_checkpoint(bytes: &[u8]) -> Result<TensorStore, WeightError> {
    let mut archive = Archive::open(bytes)?;
    if let Some(order) = archive.entry(&format!("{}byteorder", archive.prefix))?
        && order.trim_ascii() == b"big"
    {
        return Err(err(
            "the checkpoint was saved on a big-endian machine, which is not supported",
        ));
    }
    let pkl_name = format!("{}data.pkl", archive.prefix);
    let pickle = archive
        .entry(&pkl_name)?
        .ok_or_else(|| err(format!("the zip archive has no `{pkl_name}`")))?;
    let root = Unpickler::new(&pickle).load()?;
    drop(pickle);

    let entries = state_dict_tensors(&root)?;
    let mut tensors = BTreeMap::new();
    for (name, tensor) in entries {
        let host = materialise(&name, &tensor, &mut archive)?;
        tensors.insert(name, host);
    }
    Ok(TensorStore::new(tensors, BTreeMap::new()))
}

// ---------------------------------------------------------------------------
// Zip container
// ---------------------------------------------------------------------------

struct Archive<'a> {
    bytes: &'a [u8],
    zip: zip::ZipArchive<Cursor<&'a [u8]>>,
    /// Path of the top-level folder including its trailing `/` (may be empty).
    prefix: String,
}

impl<'a> Archive<'a> {
    fn open(bytes: &'a [u8]) -> Result<Self, WeightError> {
        if bytes.is_empty() {
            return Err(err("the file is empty"));
        }
        let zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| {
            err(format!(
                "cannot open the zip archive (truncated or not a torch.save file): {e}"
            ))
        })?;
        // `<folder>/data.pkl`; the folder name depends on how the file was saved.
        let prefix = zip
            .file_names()
            .filter_map(|n| n.strip_suffix("data.pkl"))
            .filter(|p| p.is_empty() || (p.ends_with('/') && p.matches('/').count() == 1))
            .min_by_key(|p| p.len())
            .map(str::to_string)
            .ok_or_else(|| err("the zip archive has no `data.pkl` (not a torch.save file?)"))?;
        Ok(Self { bytes, zip, prefix })
    }

    /// The contents of one entry, borrowed from the input when stored
    /// uncompressed (as torch writes them); `None` when there is no such entry.
    fn entry(&mut self, name: &str) -> Result<Option<Cow<'a, [u8]>>, WeightError> {
        let mut file = match self.zip.by_name(name) {
            Ok(f) => f,
            Err(ZipError::FileNotFound) => return Ok(None),
            Err(e) => {
                return Err(err(format!(
                    "cannot read `{name}` from the zip archive: {e}"
                )));
            }
        };
        if file.compression() == CompressionMethod::Stored {
            let start = usize::try_from(file.data_start()).ok();
            let len = usize::try_from(file.size()).ok();
            let range = start.zip(len).and_then(|(s, l)| Some(s..s.checked_add(l)?));
            let bytes: &'a [u8] = self.bytes;
            return match range.and_then(|r| bytes.get(r)) {
                Some(data) => Ok(Some(Cow::Borrowed(data))),
                None => Err(err(format!(
                    "zip entry `{name}` runs past the end of the file (truncated?)"
                ))),
            };
        }
        // A deflated entry (torch writes none; a re-zipped checkpoint has them) is read
        // up to the size its header declares, in one buffer reserved first: deflate
        // expands at most 1032:1, so a larger declared size is a lie, and a stream that
        // inflates past it (a zip bomb) is stopped there.
        let declared = file.size();
        if declared
            > file
                .compressed_size()
                .saturating_mul(1032)
                .saturating_add(1024)
        {
            return Err(err(format!(
                "zip entry `{name}` declares {declared} bytes from {} compressed bytes, \
                 more than deflate can expand to (corrupt archive?)",
                file.compressed_size()
            )));
        }
        let mut out = Vec::new();
        usize::try_from(declared)
            .ok()
            .and_then(|n| out.try_reserve_exact(n).ok())
            .ok_or_else(|| WeightError::OutOfMemory {
                what: format!("zip entry `{name}`"),
                bytes: declared,
            })?;
        file.by_ref()
            .take(declared.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| err(format!("cannot decompress zip entry `{name}`: {e}")))?;
        if out.len() as u64 != declared {
            let inflated = if out.len() as u64 > declared {
                "more".to_string()
            } else {
                out.len().to_string()
            };
            return Err(err(format!(
                "zip entry `{name}` inflates to {inflated} bytes where its header declares \
                 {declared} (corrupt archive?)"
            )));
        }
        Ok(Some(Cow::Owned(out)))
    }
}

// ---------------------------------------------------------------------------
// Pickle values
// ---------------------------------------------------------------------------

/// A storage reference from a persistent id.
struct StorageRef {
    key: String,
    /// The storage class name, e.g. `FloatStorage`.
    type_name: String,
    /// Element type and size in bytes; `None` for storage types we cannot decode.
    dtype: Option<(Dtype, usize)>,
}

/// The arguments of `_rebuild_tensor_v2`: a strided view into a storage.
struct TensorRef {
    storage: Rc<StorageRef>,
    offset: usize,
    size: Vec<usize>,
    stride: Vec<usize>,
}

/// A pickled value. Only what the reader inspects is modelled: values it never
/// looks at (floats, bytes, big ints, instances of other classes) are `Opaque`,
/// and Python bools are ints, as in Python. Lists and dicts are shared and
/// mutable, as pickle's memo requires.
#[derive(Clone)]
enum Value {
    None,
    Int(i64),
    Str(Rc<str>),
    Tuple(Rc<Items>),
    List(Rc<RefCell<Items>>),
    Dict(Rc<RefCell<Pairs>>),
    Global(Rc<(String, String)>),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
    Opaque,
}

/// The items of a tuple or list. A pickle can nest containers as deep as it has bytes
/// (`)` then one TUPLE1 per level: 300 000 levels in 300 kB, 1 kB deflated), and the
/// compiler's drop of nested values recurses once per level: past some ten thousand
/// levels that overflows the stack, an abort natively and a dead worker in the page.
/// Dropping containers goes through [`drop_flat`] instead, a loop with its own list.
struct Items(Vec<Value>);

/// The (key, value) pairs of a dict; dropped as [`Items`] are.
struct Pairs(Vec<(Value, Value)>);

impl std::ops::Deref for Items {
    type Target = Vec<Value>;
    fn deref(&self) -> &Vec<Value> {
        &self.0
    }
}

impl std::ops::DerefMut for Items {
    fn deref_mut(&mut self) -> &mut Vec<Value> {
        &mut self.0
    }
}

impl std::ops::Deref for Pairs {
    type Target = Vec<(Value, Value)>;
    fn deref(&self) -> &Vec<(Value, Value)> {
        &self.0
    }
}

impl std::ops::DerefMut for Pairs {
    fn deref_mut(&mut self) -> &mut Vec<(Value, Value)> {
        &mut self.0
    }
}

impl Drop for Items {
    fn drop(&mut self) {
        drop_flat(std::mem::take(&mut self.0));
    }
}

impl Drop for Pairs {
    fn drop(&mut self) {
        drop_flat(
            std::mem::take(&mut self.0)
                .into_iter()
                .flat_map(|(k, v)| [k, v])
                .collect(),
        );
    }
}

/// Drops values without recursing: a container whose last reference this is gives its
/// items to the work list (its own drop then finds it empty); shared ones only lose a
/// reference count.
fn drop_flat(mut work: Vec<Value>) {
    while let Some(value) = work.pop() {
        match value {
            Value::Tuple(rc) => {
                if let Ok(mut items) = Rc::try_unwrap(rc) {
                    work.append(&mut items.0);
                }
            }
            Value::List(rc) => {
                if let Ok(cell) = Rc::try_unwrap(rc) {
                    work.append(&mut cell.into_inner().0);
                }
            }
            Value::Dict(rc) => {
                if let Ok(cell) = Rc::try_unwrap(rc) {
                    let mut pairs = cell.into_inner();
                    for (k, v) in pairs.0.drain(..) {
                        work.push(k);
                        work.push(v);
                    }
                }
            }
            _ => {}
        }
    }
}

impl Value {
    fn new_tuple(items: Vec<Value>) -> Self {
        Value::Tuple(Rc::new(Items(items)))
    }

    fn new_list(items: Vec<Value>) -> Self {
        Value::List(Rc::new(RefCell::new(Items(items))))
    }

    fn new_dict(items: Vec<(Value, Value)>) -> Self {
        Value::Dict(Rc::new(RefCell::new(Pairs(items))))
    }

    fn str(s: &str) -> Self {
        Value::Str(Rc::from(s))
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Int(_) => "int",
            Value::Str(_) => "str",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global(_) => "class or function",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
            Value::Opaque => "object",
        }
    }
}

/// Maps a torch storage class name to its element type and byte size.
fn storage_dtype(type_name: &str) -> Option<(Dtype, usize)> {
    Some(match type_name {
        "FloatStorage" => (Dtype::F32, 4),
        "HalfStorage" => (Dtype::F16, 2),
        "BFloat16Storage" => (Dtype::BF16, 2),
        "DoubleStorage" => (Dtype::F64, 8),
        "LongStorage" => (Dtype::I64, 8),
        "IntStorage" => (Dtype::I32, 4),
        "ShortStorage" => (Dtype::I16, 2),
        "CharStorage" => (Dtype::I8, 1),
        "ByteStorage" | "UntypedStorage" => (Dtype::U8, 1),
        "BoolStorage" => (Dtype::BOOL, 1),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// Pickle VM
// ---------------------------------------------------------------------------

struct Unpickler<'p> {
    data: &'p [u8],
    pos: usize,
    stack: Vec<Value>,
    /// Stack heights at each MARK.
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
}

impl<'p> Unpickler<'p> {
    fn new(data: &'p [u8]) -> Self {
        Self {
            data,
            pos: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'p [u8], WeightError> {
        let data: &'p [u8] = self.data;
        let end = self.pos.checked_add(n).filter(|&e| e <= data.len());
        match end {
            Some(end) => {
                let s = &data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(err(format!(
                "data.pkl ends in the middle of an opcode at byte {} (truncated pickle)",
                self.pos
            ))),
        }
    }

    fn take_len(&mut self, n: u64) -> Result<&'p [u8], WeightError> {
        let n = usize::try_from(n).map_err(|_| err("pickle length field too large"))?;
        self.take(n)
    }

    fn byte(&mut self) -> Result<u8, WeightError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WeightError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u32(&mut self) -> Result<u64, WeightError> {
        Ok(u32::from_le_bytes(self.array()?) as u64)
    }

    fn u64(&mut self) -> Result<u64, WeightError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A newline-terminated text argument (protocol 0 opcodes), without the newline.
    fn line(&mut self) -> Result<&'p str, WeightError> {
        let rest = &self.data[self.pos.min(self.data.len())..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| err("data.pkl ends inside a text argument (truncated pickle)"))?;
        let line = self.take(n + 1)?;
        std::str::from_utf8(&line[..n]).map_err(|_| err("data.pkl has a non-UTF-8 text argument"))
    }

    fn push(&mut self, v: Value) {
        self.stack.push(v);
    }

    fn pop(&mut self) -> Result<Value, WeightError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(err(format!(
                "malformed pickle: stack underflow at byte {}",
                self.pos
            )));
        }
        self.stack
            .pop()
            .ok_or_else(|| err("malformed pickle: stack underflow"))
    }

    fn top(&self) -> Result<&Value, WeightError> {
        self.stack.last().ok_or_else(|| {
            err(format!(
                "malformed pickle: empty stack at byte {}",
                self.pos
            ))
        })
    }

    /// Pops everything above the last MARK, and the mark itself.
    fn pop_mark(&mut self) -> Result<Vec<Value>, WeightError> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| err(format!("malformed pickle: no MARK at byte {}", self.pos)))?;
        if mark > self.stack.len() {
            return Err(err("malformed pickle: stack shorter than its MARK"));
        }
        Ok(self.stack.split_off(mark))
    }

    fn memo_get(&self, key: u64) -> Result<Value, WeightError> {
        self.memo
            .get(&key)
            .cloned()
            .ok_or_else(|| err(format!("malformed pickle: memo entry {key} is not defined")))
    }

    fn memo_put(&mut self, key: u64) -> Result<(), WeightError> {
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }

    fn text_str(bytes: &[u8]) -> Value {
        std::str::from_utf8(bytes).map_or(Value::Opaque, Value::str)
    }

    /// Runs the pickle to its STOP and returns the unpickled object.
    fn load(mut self) -> Result<Value, WeightError> {
        loop {
            let at = self.pos;
            let op = self.byte()?;
            match op {
                // PROTO
                0x80 => {
                    let version = self.byte()?;
                    if version > 5 {
                        return Err(err(format!("unsupported pickle protocol {version}")));
                    }
                }
                // FRAME: framing is only a read-ahead hint.
                0x95 => {
                    self.take(8)?;
                }
                // STOP
                b'.' => return self.pop(),
                // MARK
                b'(' => self.marks.push(self.stack.len()),
                // POP
                b'0' => {
                    self.pop()?;
                }
                // POP_MARK
                b'1' => {
                    self.pop_mark()?;
                }
                // DUP
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v);
                }
                // NONE, NEWTRUE, NEWFALSE
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Int(1)),
                0x89 => self.push(Value::Int(0)),
                // BININT, BININT1, BININT2
                b'J' => {
                    let v = i32::from_le_bytes(self.array()?);
                    self.push(Value::Int(v.into()));
                }
                b'K' => {
                    let v = self.byte()?;
                    self.push(Value::Int(v.into()));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.array()?);
                    self.push(Value::Int(v.into()));
                }
                // LONG1, LONG4
                0x8a => {
                    let n = self.byte()?;
                    let bytes = self.take(n.into())?;
                    self.push(long_from_le(bytes));
                }
                0x8b => {
                    let n = i32::from_le_bytes(self.array()?);
                    let n = u64::try_from(n).map_err(|_| err("negative LONG4 length"))?;
                    let bytes = self.take_len(n)?;
                    self.push(long_from_le(bytes));
                }
                // INT, LONG (text)
                b'I' | b'L' => {
                    let line = self.line()?;
                    let digits = line.strip_suffix('L').unwrap_or(line);
                    let v = digits.parse::<i64>().map_or(Value::Opaque, Value::Int);
                    self.push(v);
                }
                // FLOAT (text), BINFLOAT
                b'F' => {
                    self.line()?;
                    self.push(Value::Opaque);
                }
                b'G' => {
                    self.take(8)?;
                    self.push(Value::Opaque);
                }
                // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => self.u32()?,
                        0x8c => self.byte()?.into(),
                        _ => self.u64()?,
                    };
                    let bytes = self.take_len(n)?;
                    let s = std::str::from_utf8(bytes).map_err(|_| {
                        err(format!("data.pkl has an invalid UTF-8 string at byte {at}"))
                    })?;
                    self.push(Value::str(s));
                }
                // BINSTRING, SHORT_BINSTRING (Python 2 str)
                b'T' | b'U' => {
                    let n = if op == b'T' {
                        self.u32()?
                    } else {
                        self.byte()?.into()
                    };
                    let bytes = self.take_len(n)?;
                    self.push(Self::text_str(bytes));
                }
                // BINBYTES, SHORT_BINBYTES, BINBYTES8, BYTEARRAY8
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' => self.u32()?,
                        b'C' => self.byte()?.into(),
                        _ => self.u64()?,
                    };
                    self.take_len(n)?;
                    self.push(Value::Opaque);
                }
                // EMPTY_TUPLE, TUPLE, TUPLE1, TUPLE2, TUPLE3
                b')' => self.push(Value::new_tuple(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Value::new_tuple(items));
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Value::new_tuple(items));
                }
                // EMPTY_LIST, LIST; sets are modelled as lists.
                b']' | 0x8f => self.push(Value::new_list(Vec::new())),
                b'l' | 0x91 => {
                    let items = self.pop_mark()?;
                    self.push(Value::new_list(items));
                }
                // APPEND
                b'a' => {
                    let v = self.pop()?;
                    if let Value::List(l) = self.top()? {
                        l.borrow_mut().push(v);
                    }
                }
                // APPENDS, ADDITEMS
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    if let Value::List(l) = self.top()? {
                        l.borrow_mut().extend(items);
                    }
                }
                // EMPTY_DICT, DICT
                b'}' => self.push(Value::new_dict(Vec::new())),
                b'd' => {
                    let items = self.pop_mark()?;
                    self.push(Value::new_dict(pairs(items)?));
                }
                // SETITEM
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    if let Value::Dict(d) = self.top()? {
                        d.borrow_mut().push((k, v));
                    }
                }
                // SETITEMS
                b'u' => {
                    let items = pairs(self.pop_mark()?)?;
                    if let Value::Dict(d) = self.top()? {
                        d.borrow_mut().extend(items);
                    }
                }
                // BINPUT, LONG_BINPUT, PUT, MEMOIZE
                b'q' => {
                    let k = self.byte()?;
                    self.memo_put(k.into())?;
                }
                b'r' => {
                    let k = self.u32()?;
                    self.memo_put(k)?;
                }
                b'p' => {
                    let k = self
                        .line()?
                        .parse()
                        .map_err(|_| err("malformed PUT index"))?;
                    self.memo_put(k)?;
                }
                0x94 => {
                    let k = self.memo.len() as u64;
                    self.memo_put(k)?;
                }
                // BINGET, LONG_BINGET, GET
                b'h' => {
                    let k = self.byte()?;
                    let v = self.memo_get(k.into())?;
                    self.push(v);
                }
                b'j' => {
                    let k = self.u32()?;
                    let v = self.memo_get(k)?;
                    self.push(v);
                }
                b'g' => {
                    let k = self
                        .line()?
                        .parse()
                        .map_err(|_| err("malformed GET index"))?;
                    let v = self.memo_get(k)?;
                    self.push(v);
                }
                // GLOBAL, STACK_GLOBAL
                b'c' => {
                    let module = self.line()?.to_string();
                    let name = self.line()?.to_string();
                    self.push(Value::Global(Rc::new((module, name))));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => {
                            self.push(Value::Global(Rc::new((m.to_string(), n.to_string()))))
                        }
                        _ => return Err(err("malformed pickle: STACK_GLOBAL without two strings")),
                    }
                }
                // REDUCE, NEWOBJ: the callable's result.
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let v = call(&func, &args, 0)?;
                    self.push(v);
                }
                // NEWOBJ_EX: keyword arguments are ignored.
                0x92 => {
                    self.pop()?;
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = call(&cls, &args, 0)?;
                    self.push(v);
                }
                // BUILD: object state (e.g. an OrderedDict's `_metadata`) is not needed.
                b'b' => {
                    self.pop()?;
                    self.top()?;
                }
                // BINPERSID
                b'Q' => {
                    let pid = self.pop()?;
                    let v = persistent_load(&pid)?;
                    self.push(v);
                }
                b'P' => {
                    return Err(err(
                        "text persistent ids (PERSID) are not used by torch.save zip checkpoints",
                    ));
                }
                _ => {
                    return Err(err(format!(
                        "unknown or unsupported pickle opcode 0x{op:02x} at byte {at} of data.pkl"
                    )));
                }
            }
        }
    }
}

/// A little-endian two's complement integer (LONG1 / LONG4); too wide ones are opaque.
fn long_from_le(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Int(0);
    }
    if bytes.len() > 8 {
        return Value::Opaque;
    }
    let negative = bytes[bytes.len() - 1] & 0x80 != 0;
    let mut buf = if negative { [0xffu8; 8] } else { [0u8; 8] };
    buf[..bytes.len()].copy_from_slice(bytes);
    Value::Int(i64::from_le_bytes(buf))
}

/// Groups `k1, v1, k2, v2, ...` into pairs.
fn pairs(items: Vec<Value>) -> Result<Vec<(Value, Value)>, WeightError> {
    if !items.len().is_multiple_of(2) {
        return Err(err("malformed pickle: odd number of items for a dict"));
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

/// torch's `persistent_load`: `('storage', storage_type, key, location, numel)`.
fn persistent_load(pid: &Value) -> Result<Value, WeightError> {
    let Value::Tuple(items) = pid else {
        return Err(err(format!(
            "unsupported persistent id (a {}, expected a storage tuple)",
            pid.kind()
        )));
    };
    match &items[..] {
        [Value::Str(tag), Value::Global(ty), key, ..] if &**tag == "storage" => {
            let key = match key {
                Value::Str(s) => s.to_string(),
                Value::Int(i) => i.to_string(),
                other => {
                    return Err(err(format!(
                        "storage persistent id has a {} as its key",
                        other.kind()
                    )));
                }
            };
            let type_name = ty.1.clone();
            Ok(Value::Storage(Rc::new(StorageRef {
                key,
                dtype: storage_dtype(&type_name),
                type_name,
            })))
        }
        _ => Err(err(
            "unsupported persistent id (expected ('storage', type, key, location, numel))",
        )),
    }
}

fn non_negative(v: &Value, what: &str) -> Result<usize, WeightError> {
    match v {
        Value::Int(i) => usize::try_from(*i)
            .map_err(|_| err(format!("tensor {what} {i} is negative or too large"))),
        other => Err(err(format!(
            "tensor {what} is a {}, expected an int",
            other.kind()
        ))),
    }
}

fn int_tuple(v: &Value, what: &str) -> Result<Vec<usize>, WeightError> {
    match v {
        Value::Tuple(items) => items.iter().map(|i| non_negative(i, what)).collect(),
        other => Err(err(format!(
            "tensor {what} is a {}, expected a tuple",
            other.kind()
        ))),
    }
}

/// What calling a pickled global (REDUCE / NEWOBJ) yields. Callables that do
/// not matter for tensors give opaque objects, so that other checkpoint
/// entries (optimizer state, numpy scalars, configs) are read and ignored.
fn call(func: &Value, args: &Value, depth: usize) -> Result<Value, WeightError> {
    let Value::Global(g) = func else {
        return Ok(Value::Opaque);
    };
    let args: &[Value] = match args {
        Value::Tuple(t) => t,
        _ => &[],
    };
    let (module, name) = (g.0.as_str(), g.1.as_str());
    match (module, name) {
        ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => {
            let [storage, offset, size, stride, ..] = args else {
                return Err(err(format!(
                    "{module}.{name} called with {} argument(s), expected at least 4",
                    args.len()
                )));
            };
            let Value::Storage(storage) = storage else {
                return Err(err(format!(
                    "{module}.{name} got a {} instead of a storage",
                    storage.kind()
                )));
            };
            let size = int_tuple(size, "size")?;
            let stride = int_tuple(stride, "stride")?;
            if size.len() != stride.len() {
                return Err(err(format!(
                    "tensor size {size:?} and stride {stride:?} differ in rank"
                )));
            }
            Ok(Value::Tensor(Rc::new(TensorRef {
                storage: storage.clone(),
                offset: non_negative(offset, "storage offset")?,
                size,
                stride,
            })))
        }
        // nn.Parameter and tensor subclasses wrap a plain tensor.
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
            Ok(args.first().cloned().unwrap_or(Value::Opaque))
        }
        ("torch._tensor" | "torch._utils", "_rebuild_from_type_v2") if depth < MAX_CALL_DEPTH => {
            match args {
                [inner, _, inner_args, ..] => call(inner, inner_args, depth + 1),
                _ => Ok(Value::Opaque),
            }
        }
        ("collections", "OrderedDict" | "defaultdict") | ("builtins" | "__builtin__", "dict") => {
            // OrderedDict(iterable_of_pairs) is the only form with pairs in args.
            let mut items = Vec::new();
            if name == "OrderedDict"
                && let Some(Value::List(l)) = args.first()
            {
                for pair in l.borrow().iter() {
                    if let Value::Tuple(kv) = pair
                        && let [k, v] = &kv[..]
                    {
                        items.push((k.clone(), v.clone()));
                    }
                }
            }
            Ok(Value::new_dict(items))
        }
        ("torch", "Size") => Ok(args.first().cloned().unwrap_or(Value::Opaque)),
        _ => Ok(Value::Opaque),
    }
}

// ---------------------------------------------------------------------------
// State dict selection and tensor materialisation
// ---------------------------------------------------------------------------

fn dict_get(items: &[(Value, Value)], key: &str) -> Option<Value> {
    items
        .iter()
        .rev()
        .find(|(k, _)| matches!(k, Value::Str(s) if &**s == key))
        .map(|(_, v)| v.clone())
}

/// The (name, tensor) entries of the state dict, in file order.
fn state_dict_tensors(root: &Value) -> Result<Vec<(String, Rc<TensorRef>)>, WeightError> {
    let Value::Dict(top) = root else {
        return Err(err(format!(
            "the pickled object is a {}, expected a state dict or a dict with a \"model\" entry",
            root.kind()
        )));
    };
    let top = top.borrow();
    let nested = NESTED_STATE_DICT_KEYS
        .iter()
        .find_map(|key| match dict_get(&top, key) {
            Some(Value::Dict(d)) => Some((*key, d)),
            _ => None,
        });
    let (which, dict) = match &nested {
        Some((key, d)) => (format!("the state dict under \"{key}\""), d.borrow()),
        None => ("the top-level dict".to_string(), top),
    };
    let tensors: Vec<(String, Rc<TensorRef>)> = dict
        .iter()
        .filter_map(|(k, v)| match (k, v) {
            (Value::Str(k), Value::Tensor(t)) => Some((k.to_string(), t.clone())),
            _ => None,
        })
        .collect();
    if tensors.is_empty() {
        return Err(err(format!(
            "no tensors found in {which} ({} entries, none of them a tensor)",
            dict.len()
        )));
    }
    Ok(tensors)
}

/// Whether `stride` is the row-major layout of `size` (size-1 dims ignored).
fn is_row_major(size: &[usize], stride: &[usize]) -> bool {
    let mut expected = 1usize;
    for (&s, &st) in size.iter().zip(stride).rev() {
        if s != 1 && st != expected {
            return false;
        }
        expected = expected.saturating_mul(s);
    }
    true
}

fn decode(name: &str, dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>, WeightError> {
    match dtype {
        Dtype::I8 => collect_f32(name, bytes.len(), bytes.iter().map(|&b| b as i8 as f32)),
        Dtype::I16 => collect_f32(
            name,
            bytes.len() / 2,
            bytes
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as f32),
        ),
        _ => decode_to_f32(name, dtype, bytes),
    }
}

/// Reads a tensor's storage and copies its (possibly strided) view into a
/// contiguous row-major f32 tensor.
fn materialise(
    name: &str,
    t: &TensorRef,
    archive: &mut Archive<'_>,
) -> Result<HostTensor, WeightError> {
    let storage = &t.storage;
    let Some((dtype, elem)) = storage.dtype else {
        return Err(WeightError::UnsupportedDtype {
            key: name.to_string(),
            dtype: storage.type_name.clone(),
        });
    };
    let numel = t
        .size
        .iter()
        .try_fold(1usize, |acc, &s| acc.checked_mul(s))
        .ok_or_else(|| {
            err(format!(
                "tensor `{name}` has an overflowing size {:?}",
                t.size
            ))
        })?;
    if numel == 0 {
        return Ok(HostTensor::new(t.size.clone(), Vec::new()));
    }
    let entry_name = format!("{}data/{}", archive.prefix, storage.key);
    let raw = archive.entry(&entry_name)?.ok_or_else(|| {
        err(format!(
            "storage file `{entry_name}` of tensor `{name}` is missing from the archive"
        ))
    })?;
    let available = raw.len() / elem;
    // Highest element index the view touches (all sizes are >= 1 here).
    let last = t
        .size
        .iter()
        .zip(&t.stride)
        .try_fold(t.offset, |acc, (&s, &st)| {
            acc.checked_add((s - 1).checked_mul(st)?)
        });
    // Views with more elements than their storage (stride-0 broadcasts) are
    // legal, but a corrupt file could ask for an enormous one: cap them.
    if numel > available && numel > available.saturating_mul(64).max(1 << 20) {
        return Err(err(format!(
            "tensor `{name}` is an implausibly large view ({numel} elements over a storage \
             of {available})"
        )));
    }
    let needed = last.and_then(|l| l.checked_add(1));
    let needed = match needed {
        Some(n) if n <= available => n,
        _ => {
            return Err(err(format!(
                "storage `{entry_name}` of tensor `{name}` is too short: it holds {available} \
                 {} element(s) but size {:?} with stride {:?} at offset {} needs {}",
                storage.type_name,
                t.size,
                t.stride,
                t.offset,
                needed.map_or_else(|| "more".to_string(), |n| n.to_string()),
            )));
        }
    };
    let data = if is_row_major(&t.size, &t.stride) {
        decode(
            name,
            dtype,
            &raw[t.offset * elem..(t.offset + numel) * elem],
        )?
    } else {
        let src = decode(name, dtype, &raw[t.offset * elem..needed * elem])?;
        gather(name, &src, &t.size, &t.stride, numel)?
    };
    Ok(HostTensor::new(t.size.clone(), data))
}

/// Copies a strided view (offset already applied to `src`) into row-major order.
fn gather(
    name: &str,
    src: &[f32],
    size: &[usize],
    stride: &[usize],
    numel: usize,
) -> Result<Vec<f32>, WeightError> {
    let rank = size.len();
    let mut out = f32_buffer(name, numel)?;
    let mut idx = vec![0usize; rank];
    let mut pos = 0usize;
    for _ in 0..numel {
        let value = src
            .get(pos)
            .ok_or_else(|| err(format!("tensor `{name}`: strided view out of range")))?;
        out.push(*value);
        for d in (0..rank).rev() {
            idx[d] += 1;
            pos = pos.wrapping_add(stride[d]);
            if idx[d] < size[d] {
                break;
            }
            pos = pos.wrapping_sub(stride[d].wrapping_mul(size[d]));
            idx[d] = 0;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    // ---- a tiny pickle writer that emits what torch.save emits ----

    struct Pickle(Vec<u8>);

    #[derive(Clone, Copy)]
    enum Dt {
        F32,
        F16,
        I64,
        Complex,
    }

    struct Spec<'a> {
        name: &'a str,
        storage: &'a str,
        dtype: Dt,
        offset: u32,
        size: &'a [u32],
        stride: &'a [u32],
    }

    impl Pickle {
        fn new(protocol: u8) -> Self {
            Pickle(vec![0x80, protocol])
        }
        fn op(&mut self, b: u8) -> &mut Self {
            self.0.push(b);
            self
        }
        fn global(&mut self, module: &str, name: &str) -> &mut Self {
            self.0.push(b'c');
            self.0.extend_from_slice(module.as_bytes());
            self.0.push(b'\n');
            self.0.extend_from_slice(name.as_bytes());
            self.0.push(b'\n');
            self
        }
        fn stack_global(&mut self, module: &str, name: &str) -> &mut Self {
            self.short_str(module).short_str(name).op(0x93)
        }
        fn str(&mut self, s: &str) -> &mut Self {
            self.0.push(b'X');
            self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
            self.0.extend_from_slice(s.as_bytes());
            self
        }
        fn short_str(&mut self, s: &str) -> &mut Self {
            self.0.push(0x8c);
            self.0.push(s.len() as u8);
            self.0.extend_from_slice(s.as_bytes());
            self
        }
        fn int(&mut self, v: u32) -> &mut Self {
            if v < 256 {
                self.0.extend_from_slice(&[b'K', v as u8]);
            } else {
                self.0.push(b'J');
                self.0.extend_from_slice(&(v as i32).to_le_bytes());
            }
            self
        }
        fn put(&mut self, k: u8) -> &mut Self {
            self.0.extend_from_slice(&[b'q', k]);
            self
        }
        fn get(&mut self, k: u8) -> &mut Self {
            self.0.extend_from_slice(&[b'h', k]);
            self
        }
        fn ints(&mut self, v: &[u32]) -> &mut Self {
            self.op(b'(');
            for &i in v {
                self.int(i);
            }
            self.op(b't')
        }
        /// `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`.
        fn tensor(&mut self, s: &Spec, proto4: bool) -> &mut Self {
            let ty = match s.dtype {
                Dt::F32 => "FloatStorage",
                Dt::F16 => "HalfStorage",
                Dt::I64 => "LongStorage",
                Dt::Complex => "ComplexFloatStorage",
            };
            if proto4 {
                self.stack_global("torch._utils", "_rebuild_tensor_v2")
                    .op(0x94);
            } else {
                self.global("torch._utils", "_rebuild_tensor_v2");
            }
            self.op(b'(').op(b'(').str("storage");
            self.global("torch", ty).str(s.storage).str("cpu").int(99);
            self.op(b't').op(b'Q');
            self.int(s.offset).ints(s.size).ints(s.stride).op(0x89);
            self.global("collections", "OrderedDict").op(b')').op(b'R');
            self.op(b't').op(b'R')
        }
        /// An OrderedDict state dict holding `specs`, with `_metadata` set by BUILD.
        fn state_dict(&mut self, specs: &[Spec], proto4: bool) -> &mut Self {
            self.global("collections", "OrderedDict")
                .put(0)
                .op(b')')
                .op(b'R')
                .put(1);
            self.op(b'(');
            for s in specs {
                if proto4 {
                    self.short_str(s.name);
                } else {
                    self.str(s.name);
                }
                self.tensor(s, proto4);
            }
            self.op(b'u');
            // state: {'_metadata': OrderedDict()} as torch writes it.
            self.op(b'}')
                .str("_metadata")
                .get(0)
                .op(b')')
                .op(b'R')
                .op(b's');
            self.op(b'b')
        }
        fn stop(&mut self) -> Vec<u8> {
            self.op(b'.');
            self.0.clone()
        }
    }

    fn zip_of(files: &[(&str, &[u8])], method: CompressionMethod) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = SimpleFileOptions::default().compression_method(method);
        for (name, data) in files {
            w.start_file(*name, opts).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn specs() -> Vec<Spec<'static>> {
        vec![
            // storage "0" holds 0..12 and is shared by several views.
            Spec {
                name: "a.weight",
                storage: "0",
                dtype: Dt::F32,
                offset: 0,
                size: &[2, 3],
                stride: &[3, 1],
            },
            // transpose of a.weight: non-contiguous.
            Spec {
                name: "a.weight_t",
                storage: "0",
                dtype: Dt::F32,
                offset: 0,
                size: &[3, 2],
                stride: &[1, 3],
            },
            // contiguous slice at an offset.
            Spec {
                name: "b.bias",
                storage: "0",
                dtype: Dt::F32,
                offset: 6,
                size: &[4],
                stride: &[1],
            },
            // strided with offset: rows [1,3] and [9,11] of storage 0.
            Spec {
                name: "c.strided",
                storage: "0",
                dtype: Dt::F32,
                offset: 1,
                size: &[2, 2],
                stride: &[8, 2],
            },
            // broadcast (stride 0) view.
            Spec {
                name: "d.expanded",
                storage: "0",
                dtype: Dt::F32,
                offset: 5,
                size: &[2, 3],
                stride: &[0, 1],
            },
            Spec {
                name: "e.half",
                storage: "1",
                dtype: Dt::F16,
                offset: 0,
                size: &[2],
                stride: &[1],
            },
            // 0-d int64 tensor, like BatchNorm's num_batches_tracked.
            Spec {
                name: "f.num_batches_tracked",
                storage: "2",
                dtype: Dt::I64,
                offset: 0,
                size: &[],
                stride: &[],
            },
            Spec {
                name: "g.empty",
                storage: "0",
                dtype: Dt::F32,
                offset: 0,
                size: &[0, 4],
                stride: &[4, 1],
            },
        ]
    }

    fn storages() -> Vec<(String, Vec<u8>)> {
        let s0: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let s1: Vec<u8> = [half::f16::from_f32(1.5), half::f16::from_f32(-2.0)]
            .iter()
            .flat_map(|h| h.to_le_bytes())
            .collect();
        vec![
            ("0".into(), f32_bytes(&s0)),
            ("1".into(), s1),
            ("2".into(), 4416366i64.to_le_bytes().to_vec()),
        ]
    }

    fn checkpoint(folder: &str, pickle: &[u8], method: CompressionMethod) -> Vec<u8> {
        let names: Vec<(String, Vec<u8>)> =
            std::iter::once((format!("{folder}/data.pkl"), pickle.to_vec()))
                .chain(std::iter::once((
                    format!("{folder}/byteorder"),
                    b"little".to_vec(),
                )))
                .chain(
                    storages()
                        .into_iter()
                        .map(|(k, v)| (format!("{folder}/data/{k}"), v)),
                )
                .chain(std::iter::once((
                    format!("{folder}/version"),
                    b"3\n".to_vec(),
                )))
                .collect();
        let files: Vec<(&str, &[u8])> = names
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect();
        zip_of(&files, method)
    }

    fn plain_pickle() -> Vec<u8> {
        Pickle::new(2).state_dict(&specs(), false).stop()
    }

    fn check_synthetic(store: &TensorStore) {
        assert_eq!(store.len(), specs().len());
        let t = |k: &str| store.get(k).unwrap_or_else(|| panic!("missing {k}"));
        assert_eq!(t("a.weight").shape, vec![2, 3]);
        assert_eq!(t("a.weight").data, vec![0., 1., 2., 3., 4., 5.]);
        assert_eq!(t("a.weight_t").shape, vec![3, 2]);
        assert_eq!(t("a.weight_t").data, vec![0., 3., 1., 4., 2., 5.]);
        assert_eq!(t("b.bias").data, vec![6., 7., 8., 9.]);
        assert_eq!(t("c.strided").data, vec![1., 3., 9., 11.]);
        assert_eq!(t("d.expanded").data, vec![5., 6., 7., 5., 6., 7.]);
        assert_eq!(t("e.half").data, vec![1.5, -2.0]);
        let nbt = t("f.num_batches_tracked");
        assert!(nbt.shape.is_empty());
        assert_eq!(nbt.data, vec![4416366.0]);
        assert_eq!(t("g.empty").shape, vec![0, 4]);
        assert!(t("g.empty").data.is_empty());
    }

    fn reason(e: WeightError) -> String {
        match e {
            WeightError::Format { format, reason } => {
                assert_eq!(format, FORMAT);
                reason
            }
            other => panic!("expected a format error, got {other:?}"),
        }
    }

    #[test]
    fn reads_plain_state_dict_with_views() {
        let bytes = checkpoint("archive", &plain_pickle(), CompressionMethod::Stored);
        check_synthetic(&read_checkpoint(&bytes).unwrap());
        // Also through TensorStore::from_bytes, which sniffs the zip magic.
        check_synthetic(&TensorStore::from_bytes(&bytes).unwrap());
    }

    #[test]
    fn reads_deflated_entries_and_other_folder_names() {
        let bytes = checkpoint("my_model-v2", &plain_pickle(), CompressionMethod::Deflated);
        check_synthetic(&read_checkpoint(&bytes).unwrap());
    }

    #[test]
    fn reads_protocol_4_pickle() {
        let mut p = Pickle::new(4);
        p.op(0x95).0.extend_from_slice(&0u64.to_le_bytes());
        let pickle = p.state_dict(&specs(), true).stop();
        let bytes = checkpoint("archive", &pickle, CompressionMethod::Stored);
        check_synthetic(&read_checkpoint(&bytes).unwrap());
    }

    /// `{"epoch": 7, "model": state_dict, "optimizer": {...}, "loss": 0.5}`:
    /// only the model's tensors come back.
    #[test]
    fn reads_state_dict_under_model_key() {
        let mut p = Pickle::new(2);
        p.op(b'}').put(200).op(b'(');
        p.str("epoch").int(7);
        p.str("model").state_dict(&specs(), false);
        p.str("optimizer").op(b'}').op(b'(');
        p.str("state").op(b'}').int(0).op(b'}').str("exp_avg");
        p.tensor(
            &Spec {
                name: "",
                storage: "0",
                dtype: Dt::F32,
                offset: 0,
                size: &[12],
                stride: &[1],
            },
            false,
        );
        p.op(b's').op(b's');
        p.str("param_groups").op(b']').op(b'(').op(b'}').str("lr");
        p.op(b'G').0.extend_from_slice(&1e-4f64.to_be_bytes());
        p.op(b's').op(b'e');
        p.op(b'u');
        // a numpy scalar: an unknown global called with bytes.
        p.str("loss").global("numpy.core.multiarray", "scalar");
        p.global("numpy", "dtype")
            .str("f8")
            .op(0x89)
            .op(0x88)
            .op(0x87)
            .op(b'R');
        p.op(b'C').op(8).0.extend_from_slice(&0.5f64.to_le_bytes());
        p.op(0x86).op(b'R');
        p.str("big").op(0x8a).op(9).0.extend_from_slice(&[1; 9]);
        p.op(b'u');
        let bytes = checkpoint("checkpoint", &p.stop(), CompressionMethod::Stored);
        check_synthetic(&read_checkpoint(&bytes).unwrap());
    }

    #[test]
    fn error_empty_input() {
        let r = reason(read_checkpoint(&[]).unwrap_err());
        assert!(r.contains("empty"), "{r}");
    }

    #[test]
    fn error_truncated_zip() {
        let bytes = checkpoint("archive", &plain_pickle(), CompressionMethod::Stored);
        for len in [4, 30, bytes.len() / 2, bytes.len() - 1] {
            let r = reason(read_checkpoint(&bytes[..len]).unwrap_err());
            assert!(r.contains("zip"), "{len}: {r}");
        }
    }

    #[test]
    fn error_zip_without_data_pkl() {
        let bytes = zip_of(
            &[("archive/data/0", &[0u8; 4][..])],
            CompressionMethod::Stored,
        );
        let r = reason(read_checkpoint(&bytes).unwrap_err());
        assert!(r.contains("data.pkl"), "{r}");
    }

    #[test]
    fn error_unknown_opcode() {
        let pickle = [0x80, 2, 0xff, b'.'];
        let bytes = checkpoint("archive", &pickle, CompressionMethod::Stored);
        let r = reason(read_checkpoint(&bytes).unwrap_err());
        assert!(r.contains("opcode 0xff"), "{r}");
    }

    /// A million nested tuples (2 bytes a level) are read and dropped without recursing:
    /// the compiler's recursive drop overflowed the stack here (an abort, not an error).
    #[test]
    fn deeply_nested_pickle_is_an_error_not_a_stack_overflow() {
        let mut pickle = vec![0x80, 2, b')'];
        pickle.extend(std::iter::repeat_n(0x85u8, 1_000_000));
        pickle.push(b'.');
        let bytes = checkpoint("archive", &pickle, CompressionMethod::Deflated);
        let r = reason(read_checkpoint(&bytes).unwrap_err());
        assert!(r.contains("the pickled object is a tuple"), "{r}");
    }

    #[test]
    fn error_truncated_pickle() {
        let pickle = plain_pickle();
        let bytes = checkpoint(
            "archive",
            &pickle[..pickle.len() / 2],
            CompressionMethod::Stored,
        );
        let r = reason(read_checkpoint(&bytes).unwrap_err());
        assert!(r.contains("truncated"), "{r}");
    }

    #[test]
    fn error_missing_storage_file() {
        let spec = Spec {
            name: "w",
            storage: "17",
            dtype: Dt::F32,
            offset: 0,
            size: &[2],
            stride: &[1],
        };
        let pickle = Pickle::new(2).state_dict(&[spec], false).stop();
        let bytes = checkpoint("archive", &pickle, CompressionMethod::Stored);
        let r = reason(read_checkpoint(&bytes).unwrap_err());
        assert!(
            r.contains("archive/data/17") && r.contains("missing"),
            "{r}"
        );
    }

    #[test]
    fn error_storage_too_short() {
        for (offset, size, stride) in [
            (0, &[4u32, 4][..], &[4u32, 1][..]),
            (10, &[3][..], &[1][..]),
            (0, &[2, 3][..], &[1, 6][..]),
        ] {
            let spec = Spec {
                name: "w",
                storage: "0",
                dtype: Dt::F32,
                offset,
                size,
                stride,
            };
            let pickle = Pickle::new(2).state_dict(&[spec], false).stop();
            let bytes = checkpoint("archive", &pickle, CompressionMethod::Stored);
            let r = reason(read_checkpoint(&bytes).unwrap_err());
            assert!(r.contains("too short") && r.contains("holds 12"), "{r}");
        }
    }

    #[test]
    fn error_no_tensors() {
        let pickle = Pickle::new(2).state_dict(&[], false).stop();
        let bytes = checkpoint("archive", &pickle, CompressionMethod::Stored);
        let r = reason(read_checkpoint(&bytes).unwrap_err());
        assert!(r.contains("no tensors"), "{r}");

        // {"model": OrderedDict()} names where it looked.
        let mut p = Pickle::new(2);
        p.op(b'}').str("model").state_dict(&[], false).op(b's');
        let bytes = checkpoint("archive", &p.stop(), CompressionMethod::Stored);
        let r = reason(read_checkpoint(&bytes).unwrap_err());
        assert!(r.contains("no tensors") && r.contains("\"model\""), "{r}");

        // A top-level list is not a state dict.
        let bytes = checkpoint("archive", &[0x80, 2, b']', b'.'], CompressionMethod::Stored);
        let r = reason(read_checkpoint(&bytes).unwrap_err());
        assert!(r.contains("a list"), "{r}");
    }

    #[test]
    fn unsupported_storage_type_names_the_tensor() {
        let spec = Spec {
            name: "z",
            storage: "0",
            dtype: Dt::Complex,
            offset: 0,
            size: &[2],
            stride: &[1],
        };
        let pickle = Pickle::new(2).state_dict(&[spec], false).stop();
        let bytes = checkpoint("archive", &pickle, CompressionMethod::Stored);
        assert_eq!(
            read_checkpoint(&bytes).unwrap_err(),
            WeightError::UnsupportedDtype {
                key: "z".into(),
                dtype: "ComplexFloatStorage".into()
            }
        );
    }

    /// Every prefix of the pickle and many corrupted copies must give an error
    /// (or a result), never a panic.
    #[test]
    fn corrupt_pickles_never_panic() {
        let pickle = plain_pickle();
        for len in 0..pickle.len() {
            let bytes = checkpoint("archive", &pickle[..len], CompressionMethod::Stored);
            assert!(read_checkpoint(&bytes).is_err());
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..400 {
            let mut p = pickle.clone();
            for _ in 0..3 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = (seed % p.len() as u64) as usize;
                p[at] = (seed >> 32) as u8;
            }
            let bytes = checkpoint("archive", &p, CompressionMethod::Stored);
            let _ = read_checkpoint(&bytes);
        }
    }

    /// The real LiteMedSAM checkpoint.
    #[test]
    fn reads_real_lite_medsam_checkpoint() {
        let path = std::env::var_os("MEDSEG_LITE_PTH")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("weights/.cache/lite_medsam.pth")
            });
        // Fails rather than skips: the test command fetches the weights first.
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run scripts/setup.sh, or set MEDSEG_LITE_PTH to lite_medsam.pth)",
                path.display()
            )
        });
        let store = read_checkpoint(&bytes).unwrap();
        assert_eq!(store.len(), 435);
        let shape = |k: &str| store.get(k).map(|t| t.shape.clone());
        assert_eq!(shape("mask_decoder.iou_token.weight"), Some(vec![1, 256]));
        assert_eq!(
            shape("image_encoder.patch_embed.seq.0.c.weight"),
            Some(vec![32, 3, 1, 1])
        );
        assert_eq!(
            shape("image_encoder.neck.0.weight"),
            Some(vec![256, 320, 1, 1])
        );
        assert_eq!(
            shape("prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"),
            Some(vec![2, 128])
        );
        assert_eq!(
            shape("mask_decoder.output_upscaling.0.weight"),
            Some(vec![256, 64, 2, 2])
        );
        let nbt = store
            .get("image_encoder.patch_embed.seq.0.bn.num_batches_tracked")
            .unwrap();
        assert!(nbt.shape.is_empty());
        assert_eq!(nbt.data, vec![4416366.0]);
        // Reference values read with Python's struct module from the raw storage.
        let iou = &store.get("mask_decoder.iou_token.weight").unwrap().data;
        assert_eq!(&iou[..3], &[-0.0032487905_f32, 0.290277, -0.012701204]);
        let sum: f64 = iou.iter().map(|&v| v as f64).sum();
        assert!((sum - 4.769692204885359).abs() < 1e-4, "{sum}");
        let total: usize = store.iter().map(|(_, t)| t.data.len()).sum();
        assert_eq!(total, 9_801_439);
        for (k, t) in store.iter() {
            assert_eq!(t.shape.iter().product::<usize>(), t.data.len(), "{k}");
            assert!(
                t.data.iter().all(|v| v.is_finite()),
                "{k} has non-finite values"
            );
        }
    }
}
