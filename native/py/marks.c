/*
 * edgeprof._marks: the two hottest calls, region begin/end, as plain CPython builtins.
 *
 * cffi wraps every C call in a GIL release/reacquire and an errno save/restore, which costs
 * about 30 ns per call (bench/bench_clock.py). A mark takes tens of nanoseconds, so that
 * overhead would make it slower than time.perf_counter_ns(). This module holds no state of its
 * own: edgeprof.native binds it to ep_mark_begin/ep_mark_end inside edgeprof._native (so the
 * active region buffer is the one cffi manages) and the calls keep the GIL, which is right for
 * work this short.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

typedef void (*mark_fn)(void);
static mark_fn g_begin = NULL, g_end = NULL;

static PyObject *not_bound(void) {
    PyErr_SetString(PyExc_RuntimeError, "edgeprof._marks is not bound (use edgeprof.native)");
    return NULL;
}

static PyObject *marks_begin(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    if (!g_begin) return not_bound();
    g_begin();
    Py_RETURN_NONE;
}

static PyObject *marks_end(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    if (!g_end) return not_bound();
    g_end();
    Py_RETURN_NONE;
}

static PyObject *marks_bind(PyObject *self, PyObject *args) {
    (void)self;
    unsigned long long b, e;
    if (!PyArg_ParseTuple(args, "KK", &b, &e)) return NULL;
    if (!b || !e) {
        PyErr_SetString(PyExc_ValueError, "null function address");
        return NULL;
    }
    g_begin = (mark_fn)(uintptr_t)b;
    g_end = (mark_fn)(uintptr_t)e;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"begin", marks_begin, METH_NOARGS, "Open a region in the active buffer."},
    {"end", marks_end, METH_NOARGS, "Close the open region in the active buffer."},
    {"bind", marks_bind, METH_VARARGS, "bind(begin_addr, end_addr): the C functions to call."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "edgeprof._marks", "Region marks without cffi's per-call overhead.",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__marks(void) { return PyModule_Create(&module); }
