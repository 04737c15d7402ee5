// Thin wrappers over calls and macros that Swift cannot reach directly; no logic lives here.
#define _GNU_SOURCE 1
#include "CSystem.h"

#include <errno.h>
#include <linux/errqueue.h>
#include <pthread.h>
#include <string.h>

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

_Static_assert(sizeof(struct csystem_mmsghdr) == sizeof(struct mmsghdr), "mmsghdr size differs");
_Static_assert(offsetof(struct csystem_mmsghdr, msg_len) == offsetof(struct mmsghdr, msg_len),
               "mmsghdr layout differs");

int csystem_recvmmsg(int fd, struct csystem_mmsghdr *vector, unsigned int count, int flags) {
    return recvmmsg(fd, (struct mmsghdr *)vector, count, flags, NULL);
}

int csystem_sendmmsg(int fd, struct csystem_mmsghdr *vector, unsigned int count, int flags) {
    return sendmmsg(fd, (struct mmsghdr *)vector, count, flags);
}

size_t csystem_cmsg_space(size_t length) {
    return CMSG_SPACE(length);
}

/// The data of the first ancillary item of `message` with this level and type that holds at
/// least `length` bytes, or NULL.
static const unsigned char *find_control_item(const struct msghdr *message, int level, int type, size_t length) {
    for (struct cmsghdr *item = CMSG_FIRSTHDR((struct msghdr *)message); item != NULL;
         item = CMSG_NXTHDR((struct msghdr *)message, item)) {
        if (item->cmsg_level == level && item->cmsg_type == type && item->cmsg_len >= CMSG_LEN(length)) {
            return CMSG_DATA(item);
        }
    }
    return NULL;
}

int64_t csystem_receive_queue_overflow_count(const struct msghdr *message) {
#ifdef SO_RXQ_OVFL
    const unsigned char *data = find_control_item(message, SOL_SOCKET, SO_RXQ_OVFL, sizeof(uint32_t));
    if (data != NULL) {
        uint32_t dropped;
        memcpy(&dropped, data, sizeof dropped);
        return (int64_t)dropped;
    }
#else
    (void)message;
#endif
    return -1;
}

int csystem_so_rxq_ovfl(void) {
#ifdef SO_RXQ_OVFL
    return SO_RXQ_OVFL;
#else
    return -1;
#endif
}

size_t csystem_udp_segment_control_bytes(void) {
    return CMSG_SPACE(sizeof(uint16_t));
}

void csystem_set_udp_segment(struct msghdr *message, void *control, uint16_t segment_bytes) {
    message->msg_control = control;
    message->msg_controllen = CMSG_SPACE(sizeof(uint16_t));
    struct cmsghdr *item = CMSG_FIRSTHDR(message);
    item->cmsg_level = SOL_UDP;
    item->cmsg_type = UDP_SEGMENT;
    item->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    memcpy(CMSG_DATA(item), &segment_bytes, sizeof segment_bytes);
}

int csystem_udp_segment_supported(int fd) {
    int value = 0;
    socklen_t length = sizeof value;
    return getsockopt(fd, SOL_UDP, UDP_SEGMENT, &value, &length) == 0;
}

int csystem_enable_udp_gro(int fd) {
    int on = 1;
    return setsockopt(fd, SOL_UDP, UDP_GRO, &on, sizeof on);
}

int csystem_udp_gro_segment_size(const struct msghdr *message) {
    // The kernel writes the segment size as an int (udp_cmsg_recv).
    const unsigned char *data = find_control_item(message, SOL_UDP, UDP_GRO, sizeof(int));
    if (data == NULL) return -1;
    int size;
    memcpy(&size, data, sizeof size);
    return size;
}

void csystem_set_thread_name(const char *name) {
    char truncated[16];
    strncpy(truncated, name, sizeof truncated - 1);
    truncated[sizeof truncated - 1] = '\0';
    (void)pthread_setname_np(pthread_self(), truncated);
}

int csystem_enable_error_queue(int fd, int family) {
    int on = 1;
    if (family == AF_INET6) return setsockopt(fd, SOL_IPV6, IPV6_RECVERR, &on, sizeof on);
    return setsockopt(fd, SOL_IP, IP_RECVERR, &on, sizeof on);
}

int csystem_read_port_unreachable(int fd, struct sockaddr_storage *address, socklen_t *address_length) {
    // The queued entry carries the start of the datagram that failed; only its destination
    // (msg_name) and the error matter here.
    unsigned char data[64];
    unsigned char control[512];
    struct iovec vector = {.iov_base = data, .iov_len = sizeof data};
    struct msghdr message = {0};
    message.msg_name = address;
    message.msg_namelen = sizeof *address;
    message.msg_iov = &vector;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    if (recvmsg(fd, &message, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) return -1;
    *address_length = message.msg_namelen;
    const unsigned char *item = find_control_item(&message, SOL_IP, IP_RECVERR, sizeof(struct sock_extended_err));
    if (item == NULL) item = find_control_item(&message, SOL_IPV6, IPV6_RECVERR, sizeof(struct sock_extended_err));
    if (item == NULL) return 0;
    struct sock_extended_err error;
    memcpy(&error, item, sizeof error);
    int fromICMP = error.ee_origin == SO_EE_ORIGIN_ICMP || error.ee_origin == SO_EE_ORIGIN_ICMP6;
    return fromICMP && error.ee_errno == ECONNREFUSED && message.msg_namelen > 0 ? 1 : 0;
}

int csystem_peer_credentials(int fd, int32_t *pid, uint32_t *uid, uint32_t *gid) {
    struct ucred credentials;
    socklen_t length = sizeof credentials;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return -1;
    if (length != sizeof credentials) {
        errno = EINVAL;
        return -1;
    }
    *pid = credentials.pid;
    *uid = credentials.uid;
    *gid = credentials.gid;
    return 0;
}

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

int csystem_peer_groups(int fd, uint32_t *groups, int capacity) {
    if (capacity <= 0) {
        errno = EINVAL;
        return -1;
    }
    socklen_t length = (socklen_t)capacity * sizeof(gid_t);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &length) != 0) return -1;
    return (int)(length / sizeof(gid_t));
}
