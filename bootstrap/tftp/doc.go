// Package tftp is a small read-only TFTP server (RFC 1350 with the option
// extension of RFC 2347: blksize RFC 2348, tsize and timeout RFC 2349) for
// handing iPXE binaries to PXE firmware.
//
// Files are served from an os.Root: absolute paths and ".." are refused
// before the file system is touched, and symlinks that point out of the
// root are refused by os.Root. Write requests are refused. Each transfer
// runs on its own UDP socket and retransmits on timeout; duplicate ACKs are
// ignored.
//
// Packet layouts (all integers big-endian):
//
//	RRQ/WRQ  | 1 or 2 (2) | filename | 0 | mode | 0 | {name | 0 | value | 0} |
//	DATA     | 3 (2) | block (2) | 0..blksize bytes |
//	ACK      | 4 (2) | block (2) |
//	ERROR    | 5 (2) | code (2) | message | 0 |
//	OACK     | 6 (2) | {name | 0 | value | 0} |
package tftp
