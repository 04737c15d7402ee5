// System interfaces that Swift's Glibc module does not export: epoll, eventfd, signalfd, and the
// batched datagram calls recvmmsg/sendmmsg (which need _GNU_SOURCE), plus the CMSG macros Swift
// cannot call. Only the runtime, the transport and devclusterd's event-loop code import this
// module.
//
// This header deliberately does NOT define _GNU_SOURCE: it shares system headers (sys/socket.h,
// sys/select.h, ...) with Swift's Glibc module, and defining it here changes their declarations
// (`fd_set.fds_bits` versus `__fds_bits`), which Clang rejects as two conflicting definitions of
// one type. Everything that needs _GNU_SOURCE sits behind the functions below, implemented in
// CSystem.c, which defines it before including anything.
#ifndef CSYSTEM_H
#define CSYSTEM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <netinet/in.h>

/// The layout of glibc's `struct mmsghdr`, under our own name: glibc declares it only with
/// _GNU_SOURCE (see above). CSystem.c checks at compile time that both layouts agree.
struct csystem_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};

/// recvmmsg(2) without a timeout. Returns the number of datagrams received or -1 with errno.
int csystem_recvmmsg(int fd, struct csystem_mmsghdr *vector, unsigned int count, int flags);

/// sendmmsg(2). Returns the number of datagrams sent or -1 with errno.
int csystem_sendmmsg(int fd, struct csystem_mmsghdr *vector, unsigned int count, int flags);

/// The space to reserve in a control buffer for one ancillary item of `length` bytes.
size_t csystem_cmsg_space(size_t length);

/// The kernel's count of datagrams dropped on this socket's full receive queue, carried as
/// SO_RXQ_OVFL ancillary data by a received message, or -1 when the message carries none.
int64_t csystem_receive_queue_overflow_count(const struct msghdr *message);

/// The SO_RXQ_OVFL socket option number (a macro in the kernel's socket headers), or -1.
int csystem_so_rxq_ovfl(void);

/// The control-buffer bytes one UDP_SEGMENT item needs (CMSG_SPACE of a uint16_t).
size_t csystem_udp_segment_control_bytes(void);

/// Points `message` at `control` (at least `csystem_udp_segment_control_bytes()` bytes) holding
/// one UDP_SEGMENT item of `segment_bytes`: the kernel cuts the message's payload into datagrams
/// of that size (UDP generic segmentation offload, Linux 4.18+).
void csystem_set_udp_segment(struct msghdr *message, void *control, uint16_t segment_bytes);

/// Whether the kernel knows UDP_SEGMENT on this socket (getsockopt succeeds). A kernel that does
/// not would ignore the ancillary item and send one oversized datagram, so callers must ask.
int csystem_udp_segment_supported(int fd);

/// Asks the kernel to queue runs of segmented datagrams whole on this socket (UDP_GRO, Linux
/// 5.0+); each received message then carries its segment size (`csystem_udp_gro_segment_size`).
/// Returns 0 or -1 with errno.
int csystem_enable_udp_gro(int fd);

/// The segment size a received message was coalesced with (its UDP_GRO item), or -1 if it
/// carries none (a single datagram).
int csystem_udp_gro_segment_size(const struct msghdr *message);

/// Has the kernel queue ICMP errors for datagrams `fd` sends (IP_RECVERR or IPV6_RECVERR, by
/// `family`, AF_INET or AF_INET6). A queued error then makes the socket's next call fail once
/// with that error (ECONNREFUSED for "port unreachable") until the queue is read. Returns 0 or -1.
int csystem_enable_error_queue(int fd, int family);

/// Reads one entry of `fd`'s error queue without blocking. Returns 1 when it is an ICMP or
/// ICMPv6 "port unreachable" for a datagram `fd` sent, with that datagram's destination written
/// to `address` (`*address_length` bytes); 0 for any other entry; -1 with errno when the queue
/// is empty (EAGAIN) or the read failed.
int csystem_read_port_unreachable(int fd, struct sockaddr_storage *address, socklen_t *address_length);

/// The credentials of the process at the other end of a connected Unix socket (SO_PEERCRED,
/// which needs _GNU_SOURCE): for an accepted socket the client as it connected, for a connected
/// one the server as it called listen. Returns 0 or -1 with errno.
int csystem_peer_credentials(int fd, int32_t *pid, uint32_t *uid, uint32_t *gid);

/// The supplementary groups of that process (SO_PEERGROUPS, Linux 4.13+), at most `capacity`
/// written to `groups`. Returns their count, or -1 with errno (ERANGE: more than `capacity`).
int csystem_peer_groups(int fd, uint32_t *groups, int capacity);

/// Names the calling thread (at most 15 bytes are kept), for `top -H` and debuggers.
void csystem_set_thread_name(const char *name);

#endif
