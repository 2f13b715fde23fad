/* The hot paths of FasterKv's in-memory part (read, upsert in place or at the tail, INCRBY in
 * place), compiled: in CPython every bytecode of the pure-Python walk costs 30-50 ns, and these
 * run millions of times per second. faster_kv.py calls them under the store latch (and the GIL),
 * with the index's and log's buffers as arguments; engine/hotpath.py is the pure-Python
 * reference used when this module is not built, and the tests run both.
 *
 * Layouts (engine/hash_bucket.py, engine/record.py): a bucket is 8 little-endian u64 words, 7
 * entries (tag << 48 | address, bit 62 tentative) and an overflow bucket number; a record is
 * info u64 (bits 0-47 previous address, 60 has-expiry, 62 tombstone), key length u32, value
 * length u32, key, value, padding to 8, then an i64 expiry (ms) when it has one.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
/* xxHash 0.8.2 (BSD-2-Clause, engine/vendor/), the same XXH3-64 as the Python xxhash package
 * the index is built with: hashing here saves read its call into that package. */
#define XXH_INLINE_ALL
#include "vendor/xxhash.h"
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>

#define HEADER_SIZE 16
#define EXPIRY_SIZE 8
#define PREV_MASK ((UINT64_C(1) << 48) - 1)
#define HAS_EXPIRY (UINT64_C(1) << 60)
#define TOMBSTONE (UINT64_C(1) << 62)
#define HASH_TAG_SHIFT 50
#define MAX_FIELD UINT64_C(0xFFFFFFFF)

static PyObject *str_fd; /* "fd", interned at import */

static inline uint64_t load64(const char *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline uint32_t load32(const char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline void store64(char *p, uint64_t v) { memcpy(p, &v, 8); }
static inline void store32(char *p, uint32_t v) { memcpy(p, &v, 4); }

static inline uint64_t padded(uint64_t n) { return (n + 7) & ~(uint64_t)7; }

/* The index entry word for hash h, or NULL when its tag has none. The bucket chain is bounded by
 * the buffer so a corrupt overflow number cannot read out of it. */
static uint64_t *probe(char *buf, Py_ssize_t len, uint64_t mask, uint64_t h, uint64_t **empty)
{
    uint64_t tag = h >> HASH_TAG_SHIFT;
    if (!tag) tag = 1;
    uint64_t b = h & mask;
    Py_ssize_t limit = len / 64;
    if (empty) *empty = NULL;
    for (Py_ssize_t hops = 0; hops <= limit && (Py_ssize_t)b < limit; hops++) {
        uint64_t *w = (uint64_t *)(buf + (b << 6));
        for (int i = 0; i < 7; i++) {
            uint64_t e = load64((char *)(w + i));
            if (e >> 48 == tag) return w + i;
            if (empty && !*empty && e == 0) *empty = w + i;
        }
        b = load64((char *)(w + 7));
        if (!b) break;
    }
    return NULL;
}

/* The page holding addr, or NULL. */
static inline char *page_at(PyObject *pages, uint64_t addr, int bits, Py_ssize_t *plen)
{
    Py_ssize_t n = (Py_ssize_t)(addr >> bits);
    if (n >= PyList_GET_SIZE(pages)) return NULL;
    PyObject *page = PyList_GET_ITEM(pages, n);
    if (!PyByteArray_CheckExact(page)) return NULL;
    *plen = PyByteArray_GET_SIZE(page);
    return PyByteArray_AS_STRING(page);
}

/* Walks the chain from addr while it is in memory (>= head) looking for key. Returns the
 * record's address and sets *rec, or returns the first address below head with *rec NULL.
 * Returns UINT64_MAX with *rec NULL when a page is missing or a record runs past its page
 * (the caller then takes the Python path, which reports what is wrong). */
static uint64_t walk(PyObject *pages, uint64_t head, int bits, uint64_t addr,
                     const char *key, Py_ssize_t klen, char **rec)
{
    uint64_t pmask = (UINT64_C(1) << bits) - 1;
    *rec = NULL;
    while (addr >= head) {
        Py_ssize_t plen;
        char *page = page_at(pages, addr, bits, &plen);
        uint64_t off = addr & pmask;
        if (!page || (Py_ssize_t)(off + HEADER_SIZE) > plen) return UINT64_MAX;
        char *r = page + off;
        uint64_t info = load64(r);
        uint32_t kl = load32(r + 8);
        if (kl == (uint64_t)klen) {
            if ((Py_ssize_t)(off + HEADER_SIZE + kl) > plen) return UINT64_MAX;
            if (memcmp(r + HEADER_SIZE, key, (size_t)klen) == 0) {
                uint32_t vl = load32(r + 12);
                uint64_t size = padded(HEADER_SIZE + (uint64_t)kl + vl);
                if (info & HAS_EXPIRY) size += EXPIRY_SIZE;
                if ((Py_ssize_t)(off + size) > plen) return UINT64_MAX;
                *rec = r;
                return addr;
            }
        }
        addr = info & PREV_MASK;
    }
    return addr;
}

/* 1 when the record's expiry has passed, 0 if not (or it has none), -1 on error. now() is the
 * store's clock (faster_kv._now, seconds), called only for records that expire. */
static int expired(const char *r, PyObject *now)
{
    uint64_t info = load64(r);
    if (!(info & HAS_EXPIRY)) return 0;
    uint32_t kl = load32(r + 8), vl = load32(r + 12);
    int64_t exp;
    memcpy(&exp, r + padded(HEADER_SIZE + (uint64_t)kl + vl), 8);
    PyObject *t = PyObject_CallNoArgs(now);
    if (!t) return -1;
    double secs = PyFloat_AsDouble(t);
    Py_DECREF(t);
    if (secs == -1.0 && PyErr_Occurred()) return -1;
    return (double)exp <= secs * 1000.0;
}

static int get_u64(PyObject *o, uint64_t *out)
{
    unsigned long long v = PyLong_AsUnsignedLongLong(o);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) return -1;
    *out = v;
    return 0;
}

static int get_bits(PyObject *o, int *out)
{
    long v = PyLong_AsLong(o);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (v < 1 || v > 47) {
        PyErr_SetString(PyExc_ValueError, "page bits out of range");
        return -1;
    }
    *out = (int)v;
    return 0;
}

#define CHECK_NARGS(name, n)                                                                \
    if (nargs != n) {                                                                       \
        PyErr_Format(PyExc_TypeError, name "() takes %d arguments (%zd given)", n, nargs);  \
        return NULL;                                                                        \
    }

#define CHECK_TYPES(index, pages, key)                                                      \
    if (!PyByteArray_CheckExact(index) || !PyList_CheckExact(pages) || !PyBytes_Check(key)) { \
        PyErr_SetString(PyExc_TypeError, "expected (bytearray index, list of pages, bytes key)"); \
        return NULL;                                                                        \
    }

static PyObject *read_result(uint64_t addr, char *rec, PyObject *now)
{
    if (!rec) {
        if (addr == UINT64_MAX) Py_RETURN_FALSE;
        return PyLong_FromUnsignedLongLong(addr);
    }
    uint64_t info = load64(rec);
    if (info & TOMBSTONE) Py_RETURN_NONE;
    int e = expired(rec, now);
    if (e < 0) return NULL;
    if (e) return PyLong_FromLongLong(-(long long)addr);
    uint32_t kl = load32(rec + 8), vl = load32(rec + 12);
    return PyBytes_FromStringAndSize(rec + HEADER_SIZE + kl, (Py_ssize_t)vl);
}

PyDoc_STRVAR(index_read_doc,
"index_read(index, mask, h, pages, head, bits, key, now)\n--\n\n"
"The in-memory part of FasterKv.read (h: the key's hash, or None to hash it here): the value\n"
"(bytes); None for a tombstone; an int >= 0,\n"
"the chain's first address below head (0: none); -address for an expired record; False when\n"
"the Python path must decide.");

static PyObject *index_read(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    (void)mod;
    CHECK_NARGS("index_read", 8)
    PyObject *index = args[0], *pages = args[3], *key = args[6], *now = args[7];
    CHECK_TYPES(index, pages, key)
    uint64_t mask, h, head;
    int bits;
    if (get_u64(args[1], &mask) || get_u64(args[4], &head) || get_bits(args[5], &bits))
        return NULL;
    if (args[2] == Py_None)
        h = XXH3_64bits(PyBytes_AS_STRING(key), (size_t)PyBytes_GET_SIZE(key));
    else if (get_u64(args[2], &h))
        return NULL;
    uint64_t *slot = probe(PyByteArray_AS_STRING(index), PyByteArray_GET_SIZE(index), mask, h,
                           NULL);
    uint64_t addr = slot ? load64((char *)slot) & PREV_MASK : 0;
    char *rec;
    addr = walk(pages, head, bits, addr, PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key), &rec);
    return read_result(addr, rec, now);
}

PyDoc_STRVAR(index_read_many_doc,
"index_read_many(index, mask, pages, head, bits, begin, keys, now)\n--\n\n"
"index_read of each key (a list of bytes), hashed here: (results, hits, misses). A chain that\n"
"ends below begin (the log's first address) is a miss, None; results that are neither bytes nor\n"
"None are index_read's, for the caller's general path (which counts those reads itself).");

static PyObject *index_read_many(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    (void)mod;
    CHECK_NARGS("index_read_many", 8)
    PyObject *index = args[0], *pages = args[2], *keys = args[6], *now = args[7];
    if (!PyByteArray_CheckExact(index) || !PyList_CheckExact(pages) || !PyList_CheckExact(keys)) {
        PyErr_SetString(PyExc_TypeError, "expected (bytearray index, list of pages, list keys)");
        return NULL;
    }
    uint64_t mask, head, begin;
    int bits;
    if (get_u64(args[1], &mask) || get_u64(args[3], &head) || get_bits(args[4], &bits) ||
        get_u64(args[5], &begin))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(keys);
    PyObject *out = PyList_New(n);
    if (!out) return NULL;
    Py_ssize_t hits = 0, misses = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *key = PyList_GET_ITEM(keys, i);
        if (!PyBytes_Check(key)) {
            Py_DECREF(out);
            PyErr_SetString(PyExc_TypeError, "keys must be bytes");
            return NULL;
        }
        const char *k = PyBytes_AS_STRING(key);
        Py_ssize_t kl = PyBytes_GET_SIZE(key);
        uint64_t h = XXH3_64bits(k, (size_t)kl);
        uint64_t *slot = probe(PyByteArray_AS_STRING(index), PyByteArray_GET_SIZE(index), mask,
                               h, NULL);
        char *rec;
        uint64_t addr = walk(pages, head, bits, slot ? load64((char *)slot) & PREV_MASK : 0, k,
                             kl, &rec);
        PyObject *r;
        if (!rec && addr < begin) {
            r = Py_NewRef(Py_None);
        } else {
            r = read_result(addr, rec, now);
            if (!r) {
                Py_DECREF(out);
                return NULL;
            }
        }
        if (PyBytes_CheckExact(r))
            hits++;
        else if (r == Py_None)
            misses++;
        PyList_SET_ITEM(out, i, r);
    }
    return Py_BuildValue("(Nnn)", out, hits, misses);
}

PyDoc_STRVAR(chain_read_doc,
"chain_read(addr, pages, head, bits, key, now)\n--\n\n"
"index_read from a chain start the caller found (while the index grows).");

static PyObject *chain_read(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    (void)mod;
    CHECK_NARGS("chain_read", 6)
    PyObject *pages = args[1], *key = args[4], *now = args[5];
    if (!PyList_CheckExact(pages) || !PyBytes_Check(key)) {
        PyErr_SetString(PyExc_TypeError, "expected (list of pages, bytes key)");
        return NULL;
    }
    uint64_t addr, head;
    int bits;
    if (get_u64(args[0], &addr) || get_u64(args[2], &head) || get_bits(args[3], &bits))
        return NULL;
    char *rec;
    addr = walk(pages, head, bits, addr, PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key), &rec);
    return read_result(addr, rec, now);
}

PyDoc_STRVAR(index_locate_doc,
"index_locate(index, mask, h, pages, head, bits, key)\n--\n\n"
"The address of key's newest record when it is in memory, else the first address of its chain\n"
"below head (0: none); -1 when the Python walk must decide.");

static PyObject *index_locate(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    (void)mod;
    CHECK_NARGS("index_locate", 7)
    PyObject *index = args[0], *pages = args[3], *key = args[6];
    CHECK_TYPES(index, pages, key)
    uint64_t mask, h, head;
    int bits;
    if (get_u64(args[1], &mask) || get_u64(args[2], &h) || get_u64(args[4], &head) ||
        get_bits(args[5], &bits))
        return NULL;
    uint64_t *slot = probe(PyByteArray_AS_STRING(index), PyByteArray_GET_SIZE(index), mask, h,
                           NULL);
    char *rec;
    uint64_t addr = walk(pages, head, bits, slot ? load64((char *)slot) & PREV_MASK : 0,
                         PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key), &rec);
    if (addr == UINT64_MAX) return PyLong_FromLong(-1);
    return PyLong_FromUnsignedLongLong(addr);
}

static int mark_dirty(PyObject *dirty, uint64_t addr, int bits)
{
    PyObject *n = PyLong_FromUnsignedLongLong(addr >> bits);
    if (!n) return -1;
    int rc = PySet_Add(dirty, n);
    Py_DECREF(n);
    return rc;
}

PyDoc_STRVAR(index_upsert_doc,
"index_upsert(index, mask, h, pages, head, read_only, begin, tail, bits, key, value, expiry,\n"
"             info_bits, dirty, known_end)\n--\n\n"
"The fast part of FasterKv.upsert (h: the key's hash, or None to hash it here): update the\n"
"key's mutable record in place (1), or append a\n"
"record at the tail and point the index at it (the new tail, > 1). -address when the key's\n"
"chain continues on the device at that address (>= begin): the caller may read the key's live\n"
"record there and call again with known_end = address, which appends only if the chain still\n"
"ends there (in memory: in place as usual). 0 when the Python path must run:\n"
"a record that cannot be updated in place, a full bucket or page, or begin < 0 (the store\n"
"must look below its begin address).");

/* What every upsert of one call shares. */
typedef struct {
    PyObject *index, *pages, *dirty;
    uint64_t mask, head, read_only, info_bits;
    long long begin;
    int bits, has_exp;
    long long expiry;
} upsert_ctx;

/* One upsert: 1 updated in place; > 1 appended (the new tail); -address when the chain goes on
 * on the device there; 0 for the Python path. *err is set when a Python error is raised. */
static long long upsert_one(const upsert_ctx *c, uint64_t h, const char *k, uint64_t klen,
                            const char *v, uint64_t vlen, uint64_t tail, uint64_t known_end,
                            int *err)
{
    if (klen > MAX_FIELD || vlen > MAX_FIELD) return 0;
    uint64_t base = padded(HEADER_SIZE + klen + vlen);
    uint64_t size = base + (c->has_exp ? EXPIRY_SIZE : 0);
    uint64_t flags = c->has_exp ? HAS_EXPIRY : 0;
    int bits = c->bits;
    uint64_t *empty;
    uint64_t *slot = probe(PyByteArray_AS_STRING(c->index), PyByteArray_GET_SIZE(c->index),
                           c->mask, h, &empty);
    uint64_t prev = 0;
    if (slot) {
        prev = load64((char *)slot) & PREV_MASK;
        char *rec;
        uint64_t addr = walk(c->pages, c->head, bits, prev, k, (Py_ssize_t)klen, &rec);
        if (rec && load64(rec) & TOMBSTONE) {
            /* Deleted: a new record at the chain's head supersedes the tombstone (unless the
             * caller believes the key live on the device: its count would be wrong). */
            if (known_end) return 0;
        } else if (rec) {
            uint64_t info = load64(rec);
            uint32_t vl = load32(rec + 12);
            if ((info & HAS_EXPIRY) != flags || addr < c->read_only ||
                padded(HEADER_SIZE + klen + vl) != base)
                return 0;
            /* Mark the page dirty first: if that fails nothing was written. */
            if (mark_dirty(c->dirty, addr, bits)) { *err = 1; return 0; }
            memcpy(rec + HEADER_SIZE + klen, v, vlen);
            store32(rec + 12, (uint32_t)vlen);
            if (c->has_exp) store64(rec + size - EXPIRY_SIZE, (uint64_t)c->expiry);
            return 1;
        } else if (addr == UINT64_MAX || c->begin < 0) {
            return 0;
        } else if (known_end) {
            /* Append only on the chain the caller read: it ends where the caller looked. */
            if (addr != known_end) return 0;
        } else if (addr >= (uint64_t)c->begin) {
            return -(long long)addr; /* the key may be on the device there */
        }
    } else if (!empty || c->begin < 0 || known_end) {
        return 0;
    }
    uint64_t page_size = UINT64_C(1) << bits;
    uint64_t off = tail & (page_size - 1);
    if (off + size >= page_size) return 0; /* the Python path allocates */
    Py_ssize_t plen;
    char *page = page_at(c->pages, tail, bits, &plen);
    if (!page || (Py_ssize_t)(off + size) > plen) return 0;
    char *r = page + off;
    store64(r, prev | c->info_bits | flags);
    store32(r + 8, (uint32_t)klen);
    store32(r + 12, (uint32_t)vlen);
    memcpy(r + HEADER_SIZE, k, klen);
    memcpy(r + HEADER_SIZE + klen, v, vlen);
    /* Zero the padding: pages are reused and checksums cover it. */
    memset(r + HEADER_SIZE + klen + vlen, 0, base - HEADER_SIZE - klen - vlen);
    if (c->has_exp) store64(r + base, (uint64_t)c->expiry);
    uint64_t tag = h >> HASH_TAG_SHIFT;
    if (!tag) tag = 1;
    store64((char *)(slot ? slot : empty), tail | tag << 48);
    return (long long)(tail + size);
}

/* Fills ctx from (index, mask, pages, head, read_only, begin, bits, expiry, info_bits, dirty). */
static int upsert_ctx_from(upsert_ctx *c, PyObject *index, PyObject *mask, PyObject *pages,
                           PyObject *head, PyObject *read_only, PyObject *begin, PyObject *bits,
                           PyObject *expiry, PyObject *info_bits, PyObject *dirty)
{
    if (!PyByteArray_CheckExact(index) || !PyList_CheckExact(pages) || !PySet_CheckExact(dirty)) {
        PyErr_SetString(PyExc_TypeError,
                        "expected a bytearray index, a list of pages and a set of dirty pages");
        return -1;
    }
    c->index = index;
    c->pages = pages;
    c->dirty = dirty;
    if (get_u64(mask, &c->mask) || get_u64(head, &c->head) || get_u64(read_only, &c->read_only) ||
        get_bits(bits, &c->bits) || get_u64(info_bits, &c->info_bits))
        return -1;
    c->begin = PyLong_AsLongLong(begin);
    if (c->begin == -1 && PyErr_Occurred()) return -1;
    c->has_exp = expiry != Py_None;
    c->expiry = 0;
    if (c->has_exp) {
        c->expiry = PyLong_AsLongLong(expiry);
        if (c->expiry == -1 && PyErr_Occurred()) return -1;
    }
    return 0;
}

static PyObject *index_upsert(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    (void)mod;
    CHECK_NARGS("index_upsert", 15)
    PyObject *key = args[9], *value = args[10];
    if (!PyBytes_Check(key) || !PyBytes_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "expected bytes key and value");
        return NULL;
    }
    upsert_ctx c;
    uint64_t h, tail, known_end;
    if (upsert_ctx_from(&c, args[0], args[1], args[3], args[4], args[5], args[6], args[8],
                        args[11], args[12], args[13]) ||
        get_u64(args[7], &tail) || get_u64(args[14], &known_end))
        return NULL;
    if (args[2] == Py_None)
        h = XXH3_64bits(PyBytes_AS_STRING(key), (size_t)PyBytes_GET_SIZE(key));
    else if (get_u64(args[2], &h))
        return NULL;
    int err = 0;
    long long r = upsert_one(&c, h, PyBytes_AS_STRING(key), (uint64_t)PyBytes_GET_SIZE(key),
                             PyBytes_AS_STRING(value), (uint64_t)PyBytes_GET_SIZE(value), tail,
                             known_end, &err);
    if (err) return NULL;
    return PyLong_FromLongLong(r);
}

PyDoc_STRVAR(index_upsert_many_doc,
"index_upsert_many(index, mask, pages, head, read_only, begin, tail, bits, items, start,\n"
"                  expiry, info_bits, dirty, hash)\n--\n\n"
"index_upsert for items[start:] (a list of (key, value) bytes pairs), in order, until one needs\n"
"more: (next, tail, in_place, appended, code) where items[next] is the first item not done\n"
"(len(items) when all are) and code is what index_upsert answered for it (0 or -address).\n"
"hash(key) is the store's key hash (None: XXH3-64 here).");

static PyObject *index_upsert_many(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    (void)mod;
    CHECK_NARGS("index_upsert_many", 14)
    PyObject *items = args[8], *hash = args[13];
    if (!PyList_CheckExact(items)) {
        PyErr_SetString(PyExc_TypeError, "expected a list of (key, value) pairs");
        return NULL;
    }
    upsert_ctx c;
    uint64_t tail;
    Py_ssize_t start = PyLong_AsSsize_t(args[9]);
    if (start == -1 && PyErr_Occurred()) return NULL;
    if (upsert_ctx_from(&c, args[0], args[1], args[2], args[3], args[4], args[5], args[7],
                        args[10], args[11], args[12]) ||
        get_u64(args[6], &tail))
        return NULL;
    Py_ssize_t i = start < 0 ? 0 : start;
    long long in_place = 0, appended = 0, code = 0;
    for (; i < PyList_GET_SIZE(items); i++) {
        PyObject *item = PyList_GET_ITEM(items, i);
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2) break;
        PyObject *key = PyTuple_GET_ITEM(item, 0), *value = PyTuple_GET_ITEM(item, 1);
        if (!PyBytes_CheckExact(key) || !PyBytes_CheckExact(value)) break;
        uint64_t h;
        int err = 0;
        if (hash == Py_None) {
            h = XXH3_64bits(PyBytes_AS_STRING(key), (size_t)PyBytes_GET_SIZE(key));
        } else {
            PyObject *hv = PyObject_CallOneArg(hash, key);
            h = hv ? PyLong_AsUnsignedLongLong(hv) : (uint64_t)-1;
            Py_XDECREF(hv);
            err = h == (uint64_t)-1 && PyErr_Occurred();
        }
        long long r = err ? 0 : upsert_one(&c, h, PyBytes_AS_STRING(key),
                                           (uint64_t)PyBytes_GET_SIZE(key),
                                           PyBytes_AS_STRING(value),
                                           (uint64_t)PyBytes_GET_SIZE(value), tail, 0, &err);
        if (err) {
            /* Items before this one are written: their progress must reach the caller, whose
             * per-item path then meets this item's error again and raises it. */
            if (i == start) return NULL;
            PyErr_Clear();
            break;
        }
        if (r == 1) {
            in_place++;
        } else if (r > 1) {
            tail = (uint64_t)r;
            appended++;
        } else {
            code = r;
            break;
        }
    }
    return Py_BuildValue("(nKLLL)", i, (unsigned long long)tail, in_place, appended, code);
}

/* Redis' string2ll: the canonical decimal form of an int64 only. */
static int parse_int64(const char *s, size_t n, int64_t *out)
{
    if (n == 0 || n > 20) return 0;
    if (n == 1 && s[0] == '0') { *out = 0; return 1; }
    size_t i = 0;
    int neg = 0;
    if (s[0] == '-') { neg = 1; i = 1; if (n == 1) return 0; }
    if (s[i] < '1' || s[i] > '9') return 0;
    uint64_t v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return 0;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1) return 0;
        *out = (int64_t)(0 - v);
    } else {
        if (v > (uint64_t)INT64_MAX) return 0;
        *out = (int64_t)v;
    }
    return 1;
}

PyDoc_STRVAR(index_incr_doc,
"index_incr(index, mask, h, pages, head, read_only, bits, key, delta, now, dirty)\n--\n\n"
"FasterKv.incr in place (h: the key's hash, or None to hash it here): the new value when the key's live, mutable record holds a canonical\n"
"int64 and the sum fits both int64 and the record; None when the Python path must run\n"
"(absent, on the device, read-only, not an integer, overflow, or a longer record).");

/* The in-place INCRBY of one key: 1 with *sum set, 0 when the caller's general path must run,
 * -1 on error (the clock raised, or the dirty set could not grow). */
static int incr_one(char *index, Py_ssize_t index_len, uint64_t mask, uint64_t h, PyObject *pages,
                    uint64_t head, uint64_t read_only, int bits, const char *key,
                    Py_ssize_t klen, long long delta, PyObject *now, PyObject *dirty,
                    int64_t *sum)
{
    uint64_t *slot = probe(index, index_len, mask, h, NULL);
    if (!slot) return 0;
    char *rec;
    uint64_t addr = walk(pages, head, bits, load64((char *)slot) & PREV_MASK, key, klen, &rec);
    if (!rec || addr < read_only) return 0;
    uint64_t info = load64(rec);
    if (info & TOMBSTONE) return 0;
    int e = expired(rec, now);
    if (e) return e < 0 ? -1 : 0;
    uint32_t vl = load32(rec + 12);
    char *val = rec + HEADER_SIZE + klen;
    int64_t cur;
    if (!parse_int64(val, vl, &cur) || __builtin_add_overflow(cur, (int64_t)delta, sum)) return 0;
    char out[24];
    int n = snprintf(out, sizeof out, "%lld", (long long)*sum);
    if (padded(HEADER_SIZE + (uint64_t)klen + (uint64_t)n) !=
        padded(HEADER_SIZE + (uint64_t)klen + vl))
        return 0;
    if (mark_dirty(dirty, addr, bits)) return -1;
    memcpy(val, out, (size_t)n);
    store32(rec + 12, (uint32_t)n);
    return 1;
}

static PyObject *index_incr(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    (void)mod;
    CHECK_NARGS("index_incr", 11)
    PyObject *index = args[0], *pages = args[3], *key = args[7], *now = args[9];
    PyObject *dirty = args[10];
    CHECK_TYPES(index, pages, key)
    if (!PySet_CheckExact(dirty)) {
        PyErr_SetString(PyExc_TypeError, "expected a set of dirty pages");
        return NULL;
    }
    uint64_t mask, h, head, read_only;
    int bits;
    if (get_u64(args[1], &mask) || get_u64(args[4], &head) || get_u64(args[5], &read_only) ||
        get_bits(args[6], &bits))
        return NULL;
    if (args[2] == Py_None)
        h = XXH3_64bits(PyBytes_AS_STRING(key), (size_t)PyBytes_GET_SIZE(key));
    else if (get_u64(args[2], &h))
        return NULL;
    int overflow;
    long long delta = PyLong_AsLongLongAndOverflow(args[8], &overflow);
    if (delta == -1 && PyErr_Occurred()) return NULL;
    if (overflow) Py_RETURN_NONE;
    int64_t sum;
    int r = incr_one(PyByteArray_AS_STRING(index), PyByteArray_GET_SIZE(index), mask, h, pages,
                     head, read_only, bits, PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key), delta,
                     now, dirty, &sum);
    if (r < 0) return NULL;
    if (!r) Py_RETURN_NONE;
    return PyLong_FromLongLong(sum);
}

PyDoc_STRVAR(index_incr_many_doc,
"index_incr_many(index, mask, pages, head, read_only, bits, keys, start, delta, now, dirty,\n"
"                out)\n--\n\n"
"index_incr (keys hashed here) of keys[start:] in order, each new value appended to out, up to\n"
"the first key the Python path must take: returns its position (len(keys) when all are done).");

static PyObject *index_incr_many(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    (void)mod;
    CHECK_NARGS("index_incr_many", 12)
    PyObject *index = args[0], *pages = args[2], *keys = args[6], *now = args[9];
    PyObject *dirty = args[10], *out = args[11];
    if (!PyByteArray_CheckExact(index) || !PyList_CheckExact(pages) || !PyList_CheckExact(keys) ||
        !PySet_CheckExact(dirty) || !PyList_CheckExact(out)) {
        PyErr_SetString(PyExc_TypeError,
                        "expected (bytearray index, list of pages, list keys, set, list out)");
        return NULL;
    }
    uint64_t mask, head, read_only;
    int bits;
    if (get_u64(args[1], &mask) || get_u64(args[3], &head) || get_u64(args[4], &read_only) ||
        get_bits(args[5], &bits))
        return NULL;
    Py_ssize_t i = PyLong_AsSsize_t(args[7]);
    if (i == -1 && PyErr_Occurred()) return NULL;
    int overflow;
    long long delta = PyLong_AsLongLongAndOverflow(args[8], &overflow);
    if (delta == -1 && PyErr_Occurred()) return NULL;
    if (overflow || i < 0) return PyLong_FromSsize_t(i < 0 ? 0 : i);
    for (; i < PyList_GET_SIZE(keys); i++) {
        PyObject *key = PyList_GET_ITEM(keys, i);
        if (!PyBytes_CheckExact(key)) break;
        const char *k = PyBytes_AS_STRING(key);
        Py_ssize_t kl = PyBytes_GET_SIZE(key);
        int64_t sum;
        int r = incr_one(PyByteArray_AS_STRING(index), PyByteArray_GET_SIZE(index), mask,
                         XXH3_64bits(k, (size_t)kl), pages, head, read_only, bits, k, kl, delta,
                         now, dirty, &sum);
        if (r < 0) return NULL;
        if (!r) break;
        PyObject *v = PyLong_FromLongLong(sum);
        if (!v || PyList_Append(out, v) < 0) {
            Py_XDECREF(v);
            return NULL;
        }
        Py_DECREF(v);
    }
    return PyLong_FromSsize_t(i);
}

PyDoc_STRVAR(expired_entries_doc,
"expired_entries(index, mask, start, count, pages, head, bits, now_ms)\n--\n\n"
"(address, key) of each expired, live record that an index entry of buckets start..start+count\n"
"(and their overflow buckets) points to in memory: the store's incremental expiry sweep.");

static PyObject *expired_entries(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    (void)mod;
    CHECK_NARGS("expired_entries", 8)
    PyObject *index = args[0], *pages = args[4];
    if (!PyByteArray_CheckExact(index) || !PyList_CheckExact(pages)) {
        PyErr_SetString(PyExc_TypeError, "expected (bytearray index, list of pages)");
        return NULL;
    }
    uint64_t mask, start, count, head;
    int bits;
    if (get_u64(args[1], &mask) || get_u64(args[2], &start) || get_u64(args[3], &count) ||
        get_u64(args[5], &head) || get_bits(args[6], &bits))
        return NULL;
    double now_ms = PyFloat_AsDouble(args[7]);
    if (now_ms == -1.0 && PyErr_Occurred()) return NULL;
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    char *buf = PyByteArray_AS_STRING(index);
    Py_ssize_t limit = PyByteArray_GET_SIZE(index) / 64;
    uint64_t pmask = (UINT64_C(1) << bits) - 1;
    for (uint64_t n = 0; n < count; n++) {
        uint64_t b = (start + n) & mask;
        for (Py_ssize_t hops = 0; hops <= limit && (Py_ssize_t)b < limit; hops++) {
            char *w = buf + (b << 6);
            for (int i = 0; i < 7; i++) {
                uint64_t e = load64(w + 8 * i);
                if (!e || e & (UINT64_C(1) << 62)) continue; /* empty or tentative */
                uint64_t addr = e & PREV_MASK;
                if (addr < head) continue;
                Py_ssize_t plen;
                char *page = page_at(pages, addr, bits, &plen);
                uint64_t off = addr & pmask;
                if (!page || (Py_ssize_t)(off + HEADER_SIZE) > plen) continue;
                char *r = page + off;
                uint64_t info = load64(r);
                if (!(info & HAS_EXPIRY) || info & TOMBSTONE) continue;
                uint32_t kl = load32(r + 8), vl = load32(r + 12);
                uint64_t at = off + padded(HEADER_SIZE + (uint64_t)kl + vl);
                if ((Py_ssize_t)(at + EXPIRY_SIZE) > plen) continue;
                int64_t exp;
                memcpy(&exp, page + at, 8);
                if ((double)exp > now_ms) continue;
                PyObject *item = Py_BuildValue("(Ky#)", (unsigned long long)addr,
                                               r + HEADER_SIZE, (Py_ssize_t)kl);
                if (!item || PyList_Append(out, item)) {
                    Py_XDECREF(item);
                    Py_DECREF(out);
                    return NULL;
                }
                Py_DECREF(item);
            }
            b = load64(w + 56);
            if (!b) break;
        }
    }
    return out;
}

static inline uint64_t reverse64(uint64_t v)
{
    v = ((v >> 1) & UINT64_C(0x5555555555555555)) | ((v & UINT64_C(0x5555555555555555)) << 1);
    v = ((v >> 2) & UINT64_C(0x3333333333333333)) | ((v & UINT64_C(0x3333333333333333)) << 2);
    v = ((v >> 4) & UINT64_C(0x0F0F0F0F0F0F0F0F)) | ((v & UINT64_C(0x0F0F0F0F0F0F0F0F)) << 4);
    return __builtin_bswap64(v);
}

PyDoc_STRVAR(skip_empty_doc,
"skip_empty(index, mask, cursor, budget)\n--\n\n"
"(cursor, buckets skipped): advances a reverse-binary SCAN cursor past at most budget buckets\n"
"with no entries (and no overflow bucket); stops at a bucket with one, or at 0 (wrapped).");

static PyObject *skip_empty(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    (void)mod;
    CHECK_NARGS("skip_empty", 4)
    if (!PyByteArray_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "expected a bytearray index");
        return NULL;
    }
    uint64_t mask, v, budget;
    if (get_u64(args[1], &mask) || get_u64(args[2], &v) || get_u64(args[3], &budget))
        return NULL;
    const char *buf = PyByteArray_AS_STRING(args[0]);
    uint64_t limit = (uint64_t)PyByteArray_GET_SIZE(args[0]) / 64;
    uint64_t n = 0;
    while (n < budget) {
        uint64_t b = v & mask;
        if (b >= limit) break;
        const char *w = buf + (b << 6);
        int used = 0;
        for (int i = 0; i < 8 && !used; i++) used = load64(w + 8 * i) != 0;
        if (used) break;
        n++;
        v |= ~mask;
        v = reverse64(reverse64(v) + 1);
        if (!v) break;
    }
    return Py_BuildValue("(KK)", (unsigned long long)v, (unsigned long long)n);
}

#define MAX_CHAIN_KEYS 64

PyDoc_STRVAR(collect_bucket_doc,
"collect_bucket(index, mask, bucket, pages, head, bits, now_ms, hash, out)\n--\n\n"
"Appends to out the live keys (not deleted, not expired, hash(key) & mask == bucket) of the\n"
"in-memory chains of a bucket's entries, each key once; returns [(address, keys seen)] for the\n"
"chains that continue below head. None when a chain holds too many distinct keys or leaves\n"
"its pages: the Python walk then does the bucket.");

static PyObject *collect_bucket(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    (void)mod;
    CHECK_NARGS("collect_bucket", 9)
    PyObject *index = args[0], *pages = args[3], *hash = args[7], *out = args[8];
    if (!PyByteArray_CheckExact(index) || !PyList_CheckExact(pages) || !PyList_CheckExact(out)) {
        PyErr_SetString(PyExc_TypeError, "expected (bytearray index, list of pages, list out)");
        return NULL;
    }
    uint64_t mask, bucket, head;
    int bits;
    if (get_u64(args[1], &mask) || get_u64(args[2], &bucket) || get_u64(args[4], &head) ||
        get_bits(args[5], &bits))
        return NULL;
    double now_ms = PyFloat_AsDouble(args[6]);
    if (now_ms == -1.0 && PyErr_Occurred()) return NULL;
    const char *buf = PyByteArray_AS_STRING(index);
    Py_ssize_t limit = PyByteArray_GET_SIZE(index) / 64;
    uint64_t pmask = (UINT64_C(1) << bits) - 1;
    Py_ssize_t out_start = PyList_GET_SIZE(out);
    PyObject *on_disk = PyList_New(0);
    if (!on_disk) return NULL;
    const char *seen[MAX_CHAIN_KEYS];
    uint32_t seen_len[MAX_CHAIN_KEYS];
    uint64_t b = bucket;
    for (Py_ssize_t hops = 0; hops <= limit && (Py_ssize_t)b < limit; hops++) {
        const char *w = buf + (b << 6);
        for (int i = 0; i < 7; i++) {
            uint64_t e = load64(w + 8 * i);
            if (!e || e & (UINT64_C(1) << 62)) continue; /* empty or tentative */
            uint64_t addr = e & PREV_MASK;
            int n_seen = 0;
            while (addr >= head) {
                Py_ssize_t plen;
                char *page = page_at(pages, addr, bits, &plen);
                uint64_t off = addr & pmask;
                if (!page || (Py_ssize_t)(off + HEADER_SIZE) > plen) goto decline;
                const char *r = page + off;
                uint64_t info = load64(r);
                uint32_t kl = load32(r + 8), vl = load32(r + 12);
                uint64_t size = padded(HEADER_SIZE + (uint64_t)kl + vl);
                if (info & HAS_EXPIRY) size += EXPIRY_SIZE;
                if ((Py_ssize_t)(off + size) > plen) goto decline;
                const char *k = r + HEADER_SIZE;
                int known = 0;
                for (int j = 0; j < n_seen && !known; j++)
                    known = seen_len[j] == kl && memcmp(seen[j], k, kl) == 0;
                if (!known) {
                    if (n_seen == MAX_CHAIN_KEYS) goto decline;
                    seen[n_seen] = k;
                    seen_len[n_seen++] = kl;
                    int64_t exp = 0;
                    if (info & HAS_EXPIRY) memcpy(&exp, r + size - EXPIRY_SIZE, 8);
                    if (!(info & TOMBSTONE) && (!(info & HAS_EXPIRY) || (double)exp > now_ms)) {
                        PyObject *key = PyBytes_FromStringAndSize(k, kl);
                        if (!key) goto fail;
                        PyObject *hv = PyObject_CallOneArg(hash, key);
                        if (!hv) { Py_DECREF(key); goto fail; }
                        uint64_t kh = PyLong_AsUnsignedLongLong(hv);
                        Py_DECREF(hv);
                        if (kh == (uint64_t)-1 && PyErr_Occurred()) { Py_DECREF(key); goto fail; }
                        int rc = (kh & mask) == bucket ? PyList_Append(out, key) : 0;
                        Py_DECREF(key);
                        if (rc) goto fail;
                    }
                }
                addr = info & PREV_MASK;
            }
            if (addr) {
                PyObject *keys = PySet_New(NULL);
                if (!keys) goto fail;
                for (int j = 0; j < n_seen; j++) {
                    PyObject *key = PyBytes_FromStringAndSize(seen[j], seen_len[j]);
                    if (!key || PySet_Add(keys, key)) { Py_XDECREF(key); Py_DECREF(keys); goto fail; }
                    Py_DECREF(key);
                }
                PyObject *item = Py_BuildValue("(KN)", (unsigned long long)addr, keys);
                if (!item) goto fail;
                int rc = PyList_Append(on_disk, item);
                Py_DECREF(item);
                if (rc) goto fail;
            }
        }
        b = load64(w + 56);
        if (!b) break;
    }
    return on_disk;
decline:
    Py_DECREF(on_disk);
    if (PyList_SetSlice(out, out_start, PyList_GET_SIZE(out), NULL)) return NULL;
    Py_RETURN_NONE;
fail:
    Py_DECREF(on_disk);
    return NULL;
}

/* The value of key's record rec (bytes from the device or the read cache): the value, None
 * for a tombstone or an expired record, False when rec is another key's or malformed. */
static PyObject *value_of(PyObject *rec_obj, PyObject *key, PyObject *now)
{
    const char *r = PyBytes_AS_STRING(rec_obj);
    Py_ssize_t len = PyBytes_GET_SIZE(rec_obj);
    if (len < HEADER_SIZE) Py_RETURN_FALSE;
    uint64_t info = load64(r);
    uint32_t kl = load32(r + 8), vl = load32(r + 12);
    uint64_t size = padded(HEADER_SIZE + (uint64_t)kl + vl);
    if (info & HAS_EXPIRY) size += EXPIRY_SIZE;
    if ((uint64_t)len < size) Py_RETURN_FALSE;
    if (kl != (uint64_t)PyBytes_GET_SIZE(key) || memcmp(r + HEADER_SIZE, PyBytes_AS_STRING(key), kl))
        Py_RETURN_FALSE;
    if (info & TOMBSTONE) Py_RETURN_NONE;
    int e = expired(r, now);
    if (e < 0) return NULL;
    if (e) Py_RETURN_NONE;
    return PyBytes_FromStringAndSize(r + HEADER_SIZE + kl, (Py_ssize_t)vl);
}

PyDoc_STRVAR(record_value_doc,
"record_value(rec, key, now)\n--\n\n"
"The value of key's record rec (read from the device): the value, None for a tombstone or an\n"
"expired record, False when rec is another key's record (or malformed).");

static PyObject *record_value(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    (void)mod;
    CHECK_NARGS("record_value", 3)
    if (!PyBytes_Check(args[0]) || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "expected (bytes record, bytes key, now)");
        return NULL;
    }
    return value_of(args[0], args[1], args[2]);
}

PyDoc_STRVAR(cached_read_doc,
"cached_read(entries, addr, key, floor, now)\n--\n\n"
"read's read-cache hit: when entries (the read cache's address -> (record, position) dict)\n"
"holds key's record at addr at a position >= floor (no second chance due), the value, or\n"
"None when that record is a tombstone or expired. True when addr is not in the cache, False\n"
"when the general path must run (another key's record, or a second chance due).");

static PyObject *cached_read(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    (void)mod;
    CHECK_NARGS("cached_read", 5)
    PyObject *entries = args[0], *key = args[2], *now = args[4];
    if (!PyDict_Check(entries) || !PyBytes_Check(key)) {
        PyErr_SetString(PyExc_TypeError, "expected (dict entries, int, bytes key, ...)");
        return NULL;
    }
    double floor = PyFloat_AsDouble(args[3]);
    if (floor == -1.0 && PyErr_Occurred()) return NULL;
    PyObject *entry = PyDict_GetItemWithError(entries, args[1]); /* borrowed */
    if (!entry) {
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_TRUE;
    }
    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 2) Py_RETURN_FALSE;
    PyObject *rec_obj = PyTuple_GET_ITEM(entry, 0), *pos_obj = PyTuple_GET_ITEM(entry, 1);
    if (!PyBytes_Check(rec_obj) || !PyLong_Check(pos_obj)) Py_RETURN_FALSE;
    double pos = PyLong_AsDouble(pos_obj);
    if (pos == -1.0 && PyErr_Occurred()) return NULL;
    if (pos < floor) Py_RETURN_FALSE; /* due for its second chance: the general path copies it */
    return value_of(rec_obj, key, now);
}

PyDoc_STRVAR(pread_value_doc,
"pread_value(segments, segment_size, addr, length, key, now)\n--\n\n"
"read's device case in one call: pread length bytes at addr from its open segment file\n"
"(segments: the device's segment number -> Segment dict) and decode key's record there:\n"
"(value, record) with value None for a tombstone or an expired record. False when the general\n"
"path must run: the segment is not open, the read crosses it or fails or comes back short, or\n"
"the record is another key's or longer than length.");

static PyObject *pread_value(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    (void)mod;
    CHECK_NARGS("pread_value", 6)
    PyObject *segments = args[0], *key = args[4], *now = args[5];
    if (!PyDict_Check(segments) || !PyBytes_Check(key)) {
        PyErr_SetString(PyExc_TypeError, "expected (dict segments, ..., bytes key, now)");
        return NULL;
    }
    uint64_t segment_size, addr, length;
    if (get_u64(args[1], &segment_size) || get_u64(args[2], &addr) || get_u64(args[3], &length))
        return NULL;
    if (!segment_size || length < HEADER_SIZE || length > (1 << 20)) Py_RETURN_FALSE;
    uint64_t number = addr / segment_size, offset = addr % segment_size;
    if (offset + length > segment_size) Py_RETURN_FALSE;
    PyObject *num = PyLong_FromUnsignedLongLong(number);
    if (!num) return NULL;
    PyObject *seg = PyDict_GetItemWithError(segments, num); /* borrowed */
    Py_DECREF(num);
    if (!seg) {
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_FALSE;
    }
    /* Hold the Segment across the pread: its descriptor is closed only when the last
     * reference goes, so a concurrent truncate cannot close it (or let it be reused) under us. */
    Py_INCREF(seg);
    PyObject *fd_obj = PyObject_GetAttr(seg, str_fd);
    long fd = fd_obj ? PyLong_AsLong(fd_obj) : -1;
    Py_XDECREF(fd_obj);
    if (fd < 0) {
        Py_DECREF(seg);
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_FALSE;
    }
    PyObject *data = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)length);
    if (!data) { Py_DECREF(seg); return NULL; }
    ssize_t got;
    Py_BEGIN_ALLOW_THREADS
    do {
        got = pread((int)fd, PyBytes_AS_STRING(data), (size_t)length, (off_t)offset);
    } while (got < 0 && errno == EINTR);
    Py_END_ALLOW_THREADS
    Py_DECREF(seg);
    if (got != (ssize_t)length) { Py_DECREF(data); Py_RETURN_FALSE; }
    const char *r = PyBytes_AS_STRING(data);
    uint64_t info = load64(r);
    uint32_t kl = load32(r + 8), vl = load32(r + 12);
    uint64_t size = padded(HEADER_SIZE + (uint64_t)kl + vl);
    if (info & HAS_EXPIRY) size += EXPIRY_SIZE;
    if (size > length || kl != (uint64_t)PyBytes_GET_SIZE(key) ||
        memcmp(r + HEADER_SIZE, PyBytes_AS_STRING(key), kl)) {
        Py_DECREF(data);
        Py_RETURN_FALSE;
    }
    if (size < length && _PyBytes_Resize(&data, (Py_ssize_t)size)) return NULL;
    r = PyBytes_AS_STRING(data);
    PyObject *value;
    if (info & TOMBSTONE) {
        value = Py_NewRef(Py_None);
    } else {
        int e = expired(r, now);
        if (e < 0) { Py_DECREF(data); return NULL; }
        value = e ? Py_NewRef(Py_None) : PyBytes_FromStringAndSize(r + HEADER_SIZE + kl, vl);
        if (!value) { Py_DECREF(data); return NULL; }
    }
    return Py_BuildValue("(NN)", value, data);
}

static PyMethodDef methods[] = {
    {"index_read", (PyCFunction)(void (*)(void))index_read, METH_FASTCALL, index_read_doc},
    {"index_read_many", (PyCFunction)(void (*)(void))index_read_many, METH_FASTCALL,
     index_read_many_doc},
    {"index_locate", (PyCFunction)(void (*)(void))index_locate, METH_FASTCALL, index_locate_doc},
    {"chain_read", (PyCFunction)(void (*)(void))chain_read, METH_FASTCALL, chain_read_doc},
    {"index_upsert", (PyCFunction)(void (*)(void))index_upsert, METH_FASTCALL, index_upsert_doc},
    {"index_upsert_many", (PyCFunction)(void (*)(void))index_upsert_many, METH_FASTCALL,
     index_upsert_many_doc},
    {"index_incr", (PyCFunction)(void (*)(void))index_incr, METH_FASTCALL, index_incr_doc},
    {"index_incr_many", (PyCFunction)(void (*)(void))index_incr_many, METH_FASTCALL,
     index_incr_many_doc},
    {"collect_bucket", (PyCFunction)(void (*)(void))collect_bucket, METH_FASTCALL,
     collect_bucket_doc},
    {"cached_read", (PyCFunction)(void (*)(void))cached_read, METH_FASTCALL, cached_read_doc},
    {"pread_value", (PyCFunction)(void (*)(void))pread_value, METH_FASTCALL, pread_value_doc},
    {"record_value", (PyCFunction)(void (*)(void))record_value, METH_FASTCALL, record_value_doc},
    {"skip_empty", (PyCFunction)(void (*)(void))skip_empty, METH_FASTCALL, skip_empty_doc},
    {"expired_entries", (PyCFunction)(void (*)(void))expired_entries, METH_FASTCALL,
     expired_entries_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_hotpath",
    "FasterKv's in-memory hot paths, compiled (see engine/hotpath.py for the reference).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__hotpath(void)
{
    str_fd = PyUnicode_InternFromString("fd");
    if (!str_fd) return NULL;
    return PyModule_Create(&module);
}
