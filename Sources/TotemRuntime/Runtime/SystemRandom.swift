// Random bytes from the kernel (/dev/urandom), for key generation and the nonce counter's start.
// The core never sees randomness; only the runtime reads it.

import Glibc
import Totem

/// Reads the kernel's cryptographic random source.
enum SystemRandom {
    /// `count` random bytes from /dev/urandom.
    static func bytes(_ count: Int) throws(SystemError) -> [UInt8] {
        precondition(count >= 0 && count <= 1 << 20, "random byte count \(count) outside 0...1 MiB")
        let descriptor = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .last("open /dev/urandom") }
        defer { _ = close(descriptor) }
        var bytes = [UInt8](repeating: 0, count: count)
        var filled = 0
        var attempts = 0
        // /dev/urandom returns up to 32 MiB per read; the bound guards against endless EINTR.
        while filled < count && attempts < 1_000 {
            attempts += 1
            let result = bytes.withUnsafeMutableBytes { read(descriptor, $0.baseAddress! + filled, count - filled) }
            if result > 0 {
                filled += result
            } else if result < 0 && errno == EINTR {
                continue
            } else {
                throw .last("read /dev/urandom")
            }
        }
        guard filled == count else { throw SystemError("read /dev/urandom", code: EIO) }
        return bytes
    }

    /// A random 64-bit value.
    static func uint64() throws(SystemError) -> UInt64 {
        try bytes(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }
}

/// The random values a node draws once when it starts (PacketAuthenticator, ReplayGuard).
struct BootRandomness {
    /// This life's epoch, stamped on every datagram.
    var epoch: UInt32
    /// Where the datagram counter (and the AEAD nonce) starts.
    var counterStart: UInt64
    /// Where the challenge nonces start.
    var challengeSeed: UInt64
}
