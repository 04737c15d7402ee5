// TEMPORARY minimal reassembler until the packing layer lands.
public enum FrameError: Error, Sendable, Equatable { case malformed }

public struct FragmentReassembler: Sendable {
    struct Assembly { var buffer: [UInt8] = []; var expect: UInt8 = 0; var discarding = false }
    var assemblies: [NodeID: Assembly] = [:]
    public init(maxMessageBytes: Int = 1 << 20) {}
    public mutating func receive(_ frame: [UInt8], from sender: NodeID) throws(FrameError) -> [[UInt8]] {
        guard frame.count >= 8 else { throw .malformed }
        let fragmented = frame[4], continuation = frame[5]
        let count = Int(frame[6]) << 8 | Int(frame[7])
        guard count >= 1, frame.count >= 8 + 2 * count else { throw .malformed }
        var lens: [Int] = []
        for i in 0..<count { lens.append(Int(frame[8 + 2 * i]) << 8 | Int(frame[9 + 2 * i])) }
        guard 8 + 2 * count + lens.reduce(0, +) == frame.count else { throw .malformed }
        var assembly = assemblies[sender] ?? Assembly()
        var out: [[UInt8]] = []
        var position = 8 + 2 * count
        for i in 0..<count {
            let chunk = frame[position..<position + lens[i]]; position += lens[i]
            if i == 0 && continuation != 0 {
                if assembly.expect == continuation { assembly.buffer += chunk } else { assembly.buffer = []; assembly.discarding = true }
            } else { assembly.buffer = Array(chunk); assembly.discarding = false }
            if i == count - 1 && fragmented != 0 { assembly.expect = fragmented } else {
                if !assembly.discarding { out.append(assembly.buffer) }
                assembly = Assembly()
            }
        }
        assemblies[sender] = assembly
        return out
    }
    public mutating func discardIncomplete() { assemblies.removeAll() }
    public mutating func discard(senders: some Sequence<NodeID>) { for s in senders { assemblies[s] = nil } }
}
