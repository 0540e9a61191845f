// Package netboot decides what each machine boots and serves it over HTTP.
//
// A Source maps a machine's MAC to a Boot (profile name, kernel, initrds,
// kernel command line): FileSource reads a JSON profile file (profiles
// storage, burnin, erase, rescue; machines by MAC or MAC prefix; a default
// for unknown machines, or none to ignore them) and reloads it when it
// changes, keeping the last good one on a bad edit; APISource asks a
// pixiecore-compatible API. HTTP serves the per-MAC iPXE script, kernel and
// initrds (with Range) and /metrics; Recorder logs and counts each boot
// stage per MAC. The proxyDHCP and TFTP servers live in bootstrap/pxe and
// bootstrap/tftp.
package netboot
