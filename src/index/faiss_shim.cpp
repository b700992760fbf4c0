// Two calls the FAISS C API lacks, for `src/index/ffi.rs`:
//
// - `pulsedb_hnsw_search`: one HNSW search with its own efSearch (FAISS's
//   `SearchParametersHNSW`), so a filtered search can widen its beam without
//   changing the index every other search reads;
// - `pulsedb_flat_rows`: the stored vectors of a flat or HNSW-flat index, so
//   an exact scan reads them in place instead of copying each one out.
//
// Every `FaissIndex*` of the C API is a `faiss::Index*`, and every
// `FaissIDSelectorBitmap*` a `faiss::IDSelectorBitmap*`.

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/impl/HNSW.h>
#include <faiss/impl/IDSelector.h>

#include <cstdint>
#include <cstring>
#include <exception>

namespace {

void write_error(const char* message, char* error, size_t error_len) {
    if (error == nullptr || error_len == 0) {
        return;
    }
    std::strncpy(error, message, error_len - 1);
    error[error_len - 1] = '\0';
}

const faiss::IndexIDMap* as_id_map(const void* index) {
    return dynamic_cast<const faiss::IndexIDMap*>(
            static_cast<const faiss::Index*>(index));
}

} // namespace

extern "C" {

// Searches one query in `index` (an `IndexIDMap` over an `IndexHNSW`) with
// beam width `ef_search`, admitting only the labels `selector` selects (all
// when null). Fills `k` distances and labels (`-1` past the last hit).
// Returns 0, or -1 with a message in `error`.
int pulsedb_hnsw_search(
        const void* index,
        const float* query,
        int64_t k,
        int32_t ef_search,
        const void* selector,
        float* distances,
        int64_t* labels,
        char* error,
        size_t error_len) {
    try {
        const faiss::IndexIDMap* map = as_id_map(index);
        if (map == nullptr ||
            dynamic_cast<const faiss::IndexHNSW*>(map->index) == nullptr) {
            write_error("not an id map over an HNSW index", error, error_len);
            return -1;
        }
        faiss::SearchParametersHNSW params;
        params.efSearch = ef_search;
        params.sel = const_cast<faiss::IDSelectorBitmap*>(
                static_cast<const faiss::IDSelectorBitmap*>(selector));
        map->search(1, query, k, distances, labels, &params);
        return 0;
    } catch (const std::exception& e) {
        write_error(e.what(), error, error_len);
        return -1;
    } catch (...) {
        write_error("unknown FAISS exception", error, error_len);
        return -1;
    }
}

// The stored vectors of `index` (an `IndexIDMap` over an `IndexFlat` or an
// `IndexHNSW` with flat storage), row after row; null for any other layout.
// Valid until the index is next modified or freed.
const float* pulsedb_flat_rows(const void* index) {
    const faiss::IndexIDMap* map = as_id_map(index);
    if (map == nullptr) {
        return nullptr;
    }
    const faiss::Index* storage = map->index;
    if (auto hnsw = dynamic_cast<const faiss::IndexHNSW*>(storage)) {
        storage = hnsw->storage;
    }
    auto flat = dynamic_cast<const faiss::IndexFlat*>(storage);
    return flat == nullptr ? nullptr : flat->get_xb();
}

} // extern "C"
