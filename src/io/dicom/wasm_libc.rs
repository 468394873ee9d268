//! What openjp2 (the pure-Rust port of OpenJPEG behind JPEG 2000 decoding) needs from a C
//! library on wasm32-unknown-unknown, where there is none.
//!
//! openjp2 0.6.1 declares `extern "C"` malloc/calloc/realloc/free/strcpy (and mem*/libm
//! functions, which compiler_builtins supplies). Left undefined they become `env` imports
//! of the module that wasm-bindgen cannot satisfy and the browser refuses to instantiate
//! it; `cargo check` does not notice, only the linked module's import section shows it
//! (`tests/e2e` loads the module, so a regression fails there). They are defined here over
//! Rust's allocator, each block with a 16-byte header holding its size (what `free` and
//! `realloc` need to rebuild the `Layout`; 16 keeps the alignment malloc promises).
//!
//! openjp2 also frees a null code-block buffer through Rust's `dealloc`
//! (`opj_tcd_code_block_dec_deallocate`): harmless with glibc, a trap with wasm32's
//! dlmalloc. [`NullSafeAlloc`] is the global allocator on wasm32 and ignores it.

use std::alloc::{GlobalAlloc, Layout, System, alloc, alloc_zeroed, dealloc, realloc as grow};

/// Bytes before each block: its size, and the alignment of what follows.
const HEADER: usize = 16;

fn layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(size.checked_add(HEADER)?, HEADER).ok()
}

/// # Safety
/// C `malloc`: the block is freed with [`free`] or resized with [`realloc`] only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc(size: usize) -> *mut u8 {
    let Some(l) = layout(size) else {
        return std::ptr::null_mut();
    };
    // SAFETY: `l` has a non-zero size (at least HEADER).
    unsafe {
        let p = alloc(l);
        if p.is_null() {
            return p;
        }
        (p as *mut usize).write(size);
        p.add(HEADER)
    }
}

/// # Safety
/// C `calloc`: as [`malloc`], zeroed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn calloc(count: usize, size: usize) -> *mut u8 {
    let Some(l) = count.checked_mul(size).and_then(layout) else {
        return std::ptr::null_mut();
    };
    // SAFETY: as in malloc.
    unsafe {
        let p = alloc_zeroed(l);
        if p.is_null() {
            return p;
        }
        (p as *mut usize).write(l.size() - HEADER);
        p.add(HEADER)
    }
}

/// # Safety
/// C `free`: `p` is null or came from [`malloc`], [`calloc`] or [`realloc`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free(p: *mut u8) {
    if p.is_null() {
        return;
    }
    // SAFETY: the header before `p` holds the size the block was made with.
    unsafe {
        let block = p.sub(HEADER);
        let size = (block as *const usize).read();
        if let Some(l) = layout(size) {
            dealloc(block, l);
        }
    }
}

/// # Safety
/// C `realloc`: `p` is null or came from [`malloc`], [`calloc`] or [`realloc`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn realloc(p: *mut u8, size: usize) -> *mut u8 {
    if p.is_null() {
        // SAFETY: as malloc.
        return unsafe { malloc(size) };
    }
    let Some(new_total) = size.checked_add(HEADER) else {
        return std::ptr::null_mut();
    };
    // SAFETY: the header before `p` holds the size the block was made with.
    unsafe {
        let block = p.sub(HEADER);
        let old = (block as *const usize).read();
        let Some(l) = layout(old) else {
            return std::ptr::null_mut();
        };
        let q = grow(block, l, new_total);
        if q.is_null() {
            return q;
        }
        (q as *mut usize).write(size);
        q.add(HEADER)
    }
}

/// # Safety
/// C `strcpy`: `src` is NUL-terminated and `dst` has room for it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn strcpy(dst: *mut u8, src: *const u8) -> *mut u8 {
    let mut i = 0;
    // SAFETY: the caller's promise.
    unsafe {
        loop {
            let c = *src.add(i);
            *dst.add(i) = c;
            if c == 0 {
                break;
            }
            i += 1;
        }
    }
    dst
}

/// The system allocator, except that freeing a null pointer does nothing (see the top).
struct NullSafeAlloc;

// SAFETY: every call goes to `System` unchanged, except a null `dealloc`, which frees nothing.
unsafe impl GlobalAlloc for NullSafeAlloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if !p.is_null() {
            unsafe { System.dealloc(p, l) }
        }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, size: usize) -> *mut u8 {
        unsafe { System.realloc(p, l, size) }
    }
}

#[global_allocator]
static ALLOCATOR: NullSafeAlloc = NullSafeAlloc;
