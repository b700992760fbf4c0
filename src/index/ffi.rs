//! Thin owning wrappers over the FAISS C API.
//!
//! The `faiss` crate's safe wrappers are not used for searching: its
//! `SearchParametersImpl::new` forgets the `IdSelector` it is given (FAISS's
//! `SearchParameters` does not own its selector, so the selector leaks on
//! every search), and `IdSelector::bitmap` keeps a raw pointer to the caller's
//! bytes with no lifetime tying them together. Here a [`Selection`] borrows
//! the bitmap for its whole life and frees both FAISS objects on drop.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::io::Read;
use std::marker::PhantomData;
use std::ptr;

use faiss_sys as sys;

use super::IndexError;

/// Label FAISS stores for a removed row, so no selector admits it again.
pub(crate) const DEAD_LABEL: i64 = -1;

/// Turns a FAISS C API return code into a result.
pub(crate) fn check(code: c_int) -> Result<(), IndexError> {
    if code == 0 {
        return Ok(());
    }
    // SAFETY: `faiss_get_last_error` returns null or a pointer to a
    // NUL-terminated thread-local string that stays valid until the next FAISS
    // call on this thread; it is copied before any other call.
    let message = unsafe {
        let p = sys::faiss_get_last_error();
        if p.is_null() {
            format!("error code {code}")
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    };
    Err(IndexError::Faiss(message))
}

/// An owned FAISS index (`faiss::Index*`), freed on drop.
#[derive(Debug)]
pub(crate) struct RawIndex {
    ptr: *mut sys::FaissIndex,
}

impl RawIndex {
    /// Builds an index with `faiss::index_factory` and inner-product metric.
    pub(crate) fn factory(dimension: usize, description: &str) -> Result<RawIndex, IndexError> {
        let d = c_int::try_from(dimension).map_err(|_| IndexError::InvalidVector {
            reason: format!("dimension {dimension} too large"),
        })?;
        let description =
            CString::new(description).map_err(|e| IndexError::Faiss(e.to_string()))?;
        let mut ptr = ptr::null_mut();
        // SAFETY: `ptr` is a valid out-pointer and `description` a valid C
        // string for the duration of the call.
        check(unsafe {
            sys::faiss_index_factory(
                &mut ptr,
                d,
                description.as_ptr(),
                sys::FaissMetricType_METRIC_INNER_PRODUCT,
            )
        })?;
        Ok(RawIndex { ptr })
    }

    /// Sets a `ParameterSpace` parameter (`efSearch`, `efConstruction`).
    pub(crate) fn set_parameter(&mut self, name: &str, value: f64) -> Result<(), IndexError> {
        let name = CString::new(name).map_err(|e| IndexError::Faiss(e.to_string()))?;
        let mut space = ptr::null_mut();
        // SAFETY: `space` is a valid out-pointer.
        check(unsafe { sys::faiss_ParameterSpace_new(&mut space) })?;
        // SAFETY: `space` was just created and `self.ptr` is a live index we
        // hold exclusively (`&mut self`); `space` is freed exactly once.
        let code = unsafe {
            let code = sys::faiss_ParameterSpace_set_index_parameter(
                space,
                self.ptr,
                name.as_ptr(),
                value,
            );
            sys::faiss_ParameterSpace_free(space);
            code
        };
        check(code)
    }

    /// Number of rows (live and removed).
    pub(crate) fn ntotal(&self) -> usize {
        // SAFETY: `self.ptr` is a live index.
        usize::try_from(unsafe { sys::faiss_Index_ntotal(self.ptr) }).unwrap_or(0)
    }

    /// Vector dimension.
    pub(crate) fn dimension(&self) -> usize {
        // SAFETY: `self.ptr` is a live index.
        usize::try_from(unsafe { sys::faiss_Index_d(self.ptr) }).unwrap_or(0)
    }

    /// Appends `ids.len()` vectors (`vectors.len() == ids.len() * d`).
    pub(crate) fn add_with_ids(&mut self, vectors: &[f32], ids: &[i64]) -> Result<(), IndexError> {
        if vectors.len() != ids.len() * self.dimension() {
            return Err(IndexError::Faiss("add: length mismatch".into()));
        }
        let n = i64::try_from(ids.len()).map_err(|e| IndexError::Faiss(e.to_string()))?;
        // SAFETY: the lengths were checked above, so FAISS reads `n * d`
        // floats and `n` ids from live slices; `&mut self` excludes searches.
        check(unsafe { sys::faiss_Index_add_with_ids(self.ptr, n, vectors.as_ptr(), ids.as_ptr()) })
    }

    /// Whether this is an `IndexIDMap`.
    pub(crate) fn is_id_map(&self) -> bool {
        // SAFETY: `self.ptr` is a live index; the cast only inspects it.
        !unsafe { sys::faiss_IndexIDMap_cast(self.ptr) }.is_null()
    }

    /// Whether the index under the id map is a flat (exact) index.
    pub(crate) fn is_flat(&self) -> bool {
        // SAFETY: `self.ptr` is a live index; `is_id_map` was checked when it
        // was built or loaded; the casts only inspect the objects.
        unsafe {
            let sub = sys::faiss_IndexIDMap_sub_index(self.ptr);
            !sub.is_null() && !sys::faiss_IndexFlat_cast(sub).is_null()
        }
    }

    /// The labels of the id map, one per row. Mutable through `&mut self`.
    pub(crate) fn labels_mut(&mut self) -> &mut [i64] {
        let mut p: *mut i64 = ptr::null_mut();
        let mut n = 0usize;
        // SAFETY: `self.ptr` is an `IndexIDMap` (checked at construction);
        // the returned pointer/length describe its `id_map` vector, which
        // stays valid and unmoved while we hold `&mut self` (nothing else can
        // add to the index meanwhile).
        unsafe {
            sys::faiss_IndexIDMap_id_map(self.ptr, &mut p, &mut n);
            if p.is_null() {
                &mut []
            } else {
                std::slice::from_raw_parts_mut(p, n)
            }
        }
    }

    /// The labels of the id map, one per row.
    pub(crate) fn labels(&self) -> &[i64] {
        let mut p: *mut i64 = ptr::null_mut();
        let mut n = 0usize;
        // SAFETY: as for `labels_mut`; the slice borrows `self`, so no
        // mutation can happen while it lives, and we only read through it.
        unsafe {
            sys::faiss_IndexIDMap_id_map(self.ptr, &mut p, &mut n);
            if p.is_null() {
                &[]
            } else {
                std::slice::from_raw_parts(p, n)
            }
        }
    }

    /// Copies the stored vector of `row` into `out` (`out.len() == d`).
    pub(crate) fn reconstruct_row(&self, row: usize, out: &mut [f32]) -> Result<(), IndexError> {
        if out.len() != self.dimension() || row >= self.ntotal() {
            return Err(IndexError::Faiss("reconstruct: bad row or buffer".into()));
        }
        let key = i64::try_from(row).map_err(|e| IndexError::Faiss(e.to_string()))?;
        // SAFETY: `self.ptr` is an `IndexIDMap`; its sub-index (flat or
        // HNSW-flat) supports `reconstruct` by row, which is a const read;
        // `row < ntotal` and `out` holds `d` floats, as checked above.
        check(unsafe {
            let sub = sys::faiss_IndexIDMap_sub_index(self.ptr);
            sys::faiss_Index_reconstruct(sub, key, out.as_mut_ptr())
        })
    }

    /// Searches one query; `selection` restricts the labels considered.
    /// `ef_search`, for an id map over HNSW only, sets this search's beam
    /// width (the index's own `efSearch` otherwise).
    /// Returns `(similarity, label)` pairs, FAISS's `-1` padding removed.
    pub(crate) fn search(
        &self,
        query: &[f32],
        k: usize,
        ef_search: Option<usize>,
        selection: Option<&Selection<'_>>,
    ) -> Result<Vec<(f32, i64)>, IndexError> {
        if query.len() != self.dimension() {
            return Err(IndexError::Faiss("search: query length".into()));
        }
        let kk = i64::try_from(k).map_err(|e| IndexError::Faiss(e.to_string()))?;
        let mut distances = vec![0f32; k];
        let mut labels = vec![-1i64; k];
        let _single = OmpSingleThread::enter();
        match ef_search {
            Some(ef) => {
                let ef = i32::try_from(ef).unwrap_or(i32::MAX);
                let selector = selection.map_or(ptr::null(), |s| s.selector.cast_const());
                let mut error = [0 as c_char; 256];
                // SAFETY: as below; `selector` is null or a bitmap selector
                // owned by `selection` (alive for the call), and the shim
                // writes at most `error.len()` bytes, NUL-terminated.
                let code = unsafe {
                    pulsedb_hnsw_search(
                        self.ptr.cast_const().cast(),
                        query.as_ptr(),
                        kk,
                        ef,
                        selector.cast(),
                        distances.as_mut_ptr(),
                        labels.as_mut_ptr(),
                        error.as_mut_ptr(),
                        error.len(),
                    )
                };
                if code != 0 {
                    // SAFETY: the shim NUL-terminated the message in `error`.
                    let message = unsafe { CStr::from_ptr(error.as_ptr()) };
                    return Err(IndexError::Faiss(message.to_string_lossy().into_owned()));
                }
            }
            None => {
                let params = selection.map_or(ptr::null(), |s| s.params.cast_const());
                // SAFETY: `query` holds `d` floats and the outputs `k` entries
                // each (one query). `params` is null or a `SearchParameters`
                // owned by `selection`, whose selector points into bytes
                // `selection` borrows, so both outlive the call. The params
                // object is used by this call only (IndexIDMap temporarily
                // swaps its `sel` field during search, so params must never
                // be shared between concurrent searches). Search is a const
                // operation on the index (see `FaissIndex`'s Sync).
                check(unsafe {
                    sys::faiss_Index_search_with_params(
                        self.ptr,
                        1,
                        query.as_ptr(),
                        kk,
                        params,
                        distances.as_mut_ptr(),
                        labels.as_mut_ptr(),
                    )
                })?;
            }
        }
        Ok(distances
            .into_iter()
            .zip(labels)
            .filter(|(_, label)| *label >= 0)
            .collect())
    }

    /// The stored vectors, row after row (`ntotal × d` floats), read in
    /// place: `None` unless this is an id map over a flat or HNSW-flat index.
    pub(crate) fn flat_rows(&self) -> Option<&[f32]> {
        // SAFETY: `self.ptr` is a live index; the shim only inspects it.
        let rows = unsafe { pulsedb_flat_rows(self.ptr.cast_const().cast()) };
        let len = self.ntotal().checked_mul(self.dimension())?;
        if rows.is_null() {
            return None;
        }
        // SAFETY: a flat storage holds `ntotal × d` floats contiguously at
        // `rows`; they change only when the index is modified, which takes
        // `&mut self` and so cannot happen while this borrow lives.
        Some(unsafe { std::slice::from_raw_parts(rows, len) })
    }

    /// Serialises the index with `faiss::write_index` into a buffer
    /// reserved for `capacity_hint` bytes (a close estimate spares the
    /// doubling reallocations of a growing buffer, which at 100 000 vectors
    /// would briefly hold several hundred megabytes).
    pub(crate) fn to_bytes(&self, capacity_hint: usize) -> Result<Vec<u8>, IndexError> {
        WRITE_BUFFER.with(|b| {
            let mut b = b.borrow_mut();
            b.clear();
            b.reserve_exact(capacity_hint);
        });
        let mut writer = ptr::null_mut();
        // SAFETY: valid out-pointer; `write_callback` is a plain function.
        check(unsafe { sys::faiss_CustomIOWriter_new(&mut writer, Some(write_callback)) })?;
        // SAFETY: `writer` is live until freed right after the call; the
        // callback appends to this thread's buffer, and FAISS calls it
        // synchronously on this thread. The index is only read.
        let code = unsafe {
            let code = sys::faiss_write_index_custom(self.ptr, writer.cast(), 0);
            sys::faiss_CustomIOWriter_free(writer);
            code
        };
        let bytes = WRITE_BUFFER.with(|b| std::mem::take(&mut *b.borrow_mut()));
        check(code)?;
        Ok(bytes)
    }

    /// Deserialises an index written by [`RawIndex::to_bytes`].
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<RawIndex, IndexError> {
        Self::from_reader(&mut &bytes[..])
    }

    /// Reads an index serialised by FAISS from `source`, which is read
    /// exactly as far as FAISS asks.
    pub(crate) fn from_reader(source: &mut dyn Read) -> Result<RawIndex, IndexError> {
        // SAFETY: only the trait object's lifetime is erased; the pointer is
        // registered for this thread and cleared below before `source`'s
        // borrow ends, and `read_callback` is only called during the FAISS
        // call in between.
        let erased: *mut (dyn Read + 'static) =
            unsafe { std::mem::transmute::<*mut (dyn Read + '_), _>(source) };
        READ_SOURCE.with(|s| s.set(Some(erased)));
        let mut reader = ptr::null_mut();
        let mut ptr = ptr::null_mut();
        // SAFETY: valid out-pointer; `read_callback` is a plain function.
        let made =
            check(unsafe { sys::faiss_CustomIOReader_new(&mut reader, Some(read_callback)) });
        let code = match made {
            // SAFETY: `reader` is live until freed right after the call; the
            // callback reads from `source`, registered above for this thread;
            // FAISS calls it synchronously on this thread.
            Ok(()) => unsafe {
                let code = sys::faiss_read_index_custom(reader.cast(), 0, &mut ptr);
                sys::faiss_CustomIOReader_free(reader);
                code
            },
            Err(e) => {
                READ_SOURCE.with(|s| s.set(None));
                return Err(e);
            }
        };
        READ_SOURCE.with(|s| s.set(None));
        check(code)?;
        Ok(RawIndex { ptr })
    }
}

impl Drop for RawIndex {
    fn drop(&mut self) {
        // SAFETY: `self.ptr` came from FAISS, is owned by us alone and is
        // freed exactly once.
        unsafe { sys::faiss_Index_free(self.ptr) }
    }
}

thread_local! {
    /// Destination of [`write_callback`] during [`RawIndex::to_bytes`].
    static WRITE_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// Source of [`read_callback`] during [`RawIndex::from_reader`].
    static READ_SOURCE: Cell<Option<*mut (dyn Read + 'static)>> = const { Cell::new(None) };
}

/// FAISS `IOWriter` callback: appends `size * nitems` bytes to the buffer.
unsafe extern "C" fn write_callback(data: *const c_void, size: usize, nitems: usize) -> usize {
    let Some(len) = size.checked_mul(nitems) else {
        return 0;
    };
    if len == 0 {
        return nitems;
    }
    // SAFETY: FAISS passes a pointer to `size * nitems` readable bytes.
    let src = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) };
    WRITE_BUFFER.with(|b| match b.try_borrow_mut() {
        Ok(mut buf) => {
            buf.extend_from_slice(src);
            nitems
        }
        Err(_) => 0,
    })
}

/// FAISS `IOReader` callback: copies up to `nitems` items of `size` bytes.
unsafe extern "C" fn read_callback(data: *mut c_void, size: usize, nitems: usize) -> usize {
    let Some(len) = size.checked_mul(nitems) else {
        return 0;
    };
    if len == 0 {
        return nitems;
    }
    READ_SOURCE.with(|s| {
        let Some(source) = s.get() else {
            return 0;
        };
        // SAFETY: registered by `from_reader`, whose borrow of the source
        // outlives the FAISS call this callback runs in, on this thread.
        let source = unsafe { &mut *source };
        let read = if len <= SMALL_READ {
            // Small reads (headers, scalars) land in possibly uninitialised
            // locals of FAISS's: through a buffer of ours.
            let mut chunk = [0u8; SMALL_READ];
            let ok = source.read_exact(&mut chunk[..len]).is_ok();
            // SAFETY: FAISS passes room for `size * nitems` bytes at `data`.
            ok && unsafe {
                ptr::copy_nonoverlapping(chunk.as_ptr(), data.cast::<u8>(), len);
                true
            }
        } else {
            // SAFETY: large reads fill the storage of containers FAISS has
            // just resized (initialised, `len` bytes long at `data`).
            let dest = unsafe { std::slice::from_raw_parts_mut(data.cast::<u8>(), len) };
            source.read_exact(dest).is_ok()
        };
        if read {
            nitems
        } else {
            0
        }
    })
}

/// Reads up to this size go through a buffer (see [`read_callback`]).
const SMALL_READ: usize = 4096;

/// A FAISS bitmap selector plus the search parameters carrying it, both
/// freed on drop, borrowing the bitmap bytes for as long as they exist.
#[derive(Debug)]
pub(crate) struct Selection<'a> {
    selector: *mut sys::FaissIDSelectorBitmap,
    params: *mut sys::FaissSearchParameters,
    _bytes: PhantomData<&'a [u8]>,
}

impl<'a> Selection<'a> {
    /// Selects the labels whose bit is set in `bitmap` (FAISS layout).
    pub(crate) fn bitmap(bitmap: &'a [u8]) -> Result<Selection<'a>, IndexError> {
        let mut selector = ptr::null_mut();
        // SAFETY: valid out-pointer; FAISS keeps `bitmap.as_ptr()` without
        // copying; the `'a` borrow keeps the bytes alive and unchanged until
        // this `Selection` (and so the selector) is dropped.
        check(unsafe {
            sys::faiss_IDSelectorBitmap_new(&mut selector, bitmap.len(), bitmap.as_ptr())
        })?;
        let mut params = ptr::null_mut();
        // SAFETY: `selector` is live; `SearchParameters` stores the pointer
        // without taking ownership.
        let made = check(unsafe { sys::faiss_SearchParameters_new(&mut params, selector.cast()) });
        if let Err(e) = made {
            // SAFETY: `selector` was created above and is not referenced by
            // anything else.
            unsafe { sys::faiss_IDSelectorBitmap_free(selector) };
            return Err(e);
        }
        Ok(Selection {
            selector,
            params,
            _bytes: PhantomData,
        })
    }
}

impl Drop for Selection<'_> {
    fn drop(&mut self) {
        // SAFETY: both objects are owned by this value only and freed once;
        // the parameters (which point at the selector) go first.
        unsafe {
            sys::faiss_SearchParameters_free(self.params);
            sys::faiss_IDSelectorBitmap_free(self.selector);
        }
    }
}

extern "C" {
    fn omp_get_max_threads() -> c_int;
    fn omp_set_num_threads(n: c_int);
    // `src/index/faiss_shim.cpp`.
    fn pulsedb_hnsw_search(
        index: *const c_void,
        query: *const f32,
        k: i64,
        ef_search: i32,
        selector: *const c_void,
        distances: *mut f32,
        labels: *mut i64,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
    fn pulsedb_flat_rows(index: *const c_void) -> *const f32;
}

/// Runs FAISS single-threaded on this thread until dropped.
///
/// OpenMP's thread count is a per-thread setting, so it is set around each
/// search and restored after. A single-query search gains nothing from a
/// thread team, and on a busy machine waking one per query costs more than
/// the search itself (several times the search's latency; figures in
/// `docs/performance.md`).
pub(crate) struct OmpSingleThread {
    previous: c_int,
}

impl OmpSingleThread {
    /// Switches this thread's OpenMP team size to 1.
    pub(crate) fn enter() -> OmpSingleThread {
        // SAFETY: plain libgomp calls acting on this thread's ICVs.
        let previous = unsafe {
            let previous = omp_get_max_threads();
            omp_set_num_threads(1);
            previous
        };
        OmpSingleThread { previous }
    }
}

impl Drop for OmpSingleThread {
    fn drop(&mut self) {
        // SAFETY: plain libgomp call acting on this thread's ICVs.
        unsafe { omp_set_num_threads(self.previous) }
    }
}
