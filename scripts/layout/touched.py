#!/usr/bin/env python3
"""Print, in address order, the demangled names of the functions of ELF binary BIN whose code
lies on a page of BIN that is in the page cache (mincore). Used by profile-layout.sh after
running the runtime with readahead off, so the cached pages are exactly the touched ones."""
import ctypes, mmap, os, subprocess, sys

binary = sys.argv[1]
size = os.path.getsize(binary)
fd = os.open(binary, os.O_RDONLY)
m = mmap.mmap(fd, size, access=mmap.ACCESS_COPY)
libc = ctypes.CDLL(None, use_errno=True)
libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
page = os.sysconf("SC_PAGE_SIZE")
npages = (size + page - 1) // page
vec = (ctypes.c_ubyte * npages)()
buf = (ctypes.c_char * size).from_buffer(m)
if libc.mincore(ctypes.addressof(buf), ctypes.c_size_t(size), vec) != 0:
    sys.exit("mincore: errno %d" % ctypes.get_errno())
cached = {i for i in range(npages) if vec[i] & 1}
del buf
m.close()

# Virtual address -> file offset, from the program headers of the executable segments.
segs = []
out = subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True, check=True).stdout
for line in out.splitlines():
    f = line.split()
    if f and f[0] == "LOAD" and "E" in f[6:-1]:
        off, vaddr, filesz = int(f[1], 16), int(f[2], 16), int(f[4], 16)
        segs.append((vaddr, vaddr + filesz, off))

def file_off(v):
    for lo, hi, off in segs:
        if lo <= v < hi:
            return v - lo + off
    return None

raw = subprocess.run(["nm", "-S", "-n", "--defined-only", "-C", binary], capture_output=True,
                     text=True, check=True).stdout
seen = set()
for line in raw.splitlines():
    f = line.split(" ", 3)
    if len(f) < 4 or f[2] not in ("t", "T", "w", "W"):
        continue
    v, sz, name = int(f[0], 16), int(f[1], 16), f[3]
    o = file_off(v)
    if o is None or sz == 0:
        continue
    if any(p in cached for p in range(o // page, (o + sz - 1) // page + 1)) and name not in seen:
        seen.add(name)
        print(name)
