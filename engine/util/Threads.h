#pragma once

namespace statescope {

// OpenMP's default wait policy makes idle workers spin. On a desktop, where the window's thread and
// other programs share the cores, the spinning workers steal those cores from the thread that has
// work: a 2-core machine under load ran tiny-collapse at 21-60 tokens/s instead of ~400. libgomp reads
// OMP_WAIT_POLICY once, when it is loaded, so this sets it to PASSIVE (unless the user chose a policy)
// and re-executes the program (/proc/self/exe with the same argv) before anything else runs. Returns
// normally when the policy was already set, or if the re-exec fails (the run then merely spins).
void preferPassiveOpenMp(char** argv);

// How many cores are free now: all cores less those other programs kept busy over a short sample
// (100 ms of /proc/stat), at least 1. On a loaded desktop fewer engine threads than cores run faster:
// a 2-core machine with 2 busy programs ran tiny-collapse at 756 tokens/s on 1 thread and at 435-535
// on 2 (passive) threads. Without /proc/stat: all cores.
int freeCores();

} // namespace statescope
