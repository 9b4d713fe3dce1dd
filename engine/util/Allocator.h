#pragma once

namespace statescope {

// glibc returns freed memory to the kernel eagerly: the top of the heap is trimmed once 128 KB are
// free there, and large blocks are mmap'ed and unmapped one by one. An engine chunk allocates and
// frees the same large tensors (projections, scan intermediates, logits) every time, so each chunk
// faulted its pages in anew: on the 2-core CPU, 130m float32 spent 29 % of its time in the kernel,
// mostly clearing pages. This keeps up to 1 GB of freed heap for reuse and serves blocks up to 32 MB
// from the heap. Call it once at start-up, before the engine allocates. Returns false where it changes
// nothing: not glibc, or the user set MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ themselves.
bool keepFreedMemoryForReuse();

} // namespace statescope
