// Reading a control request's arguments into typed values, with errors that say which argument
// is wrong and why (the texts are part of the control protocol).

import ClusterServices
import Membership

/// Reading a request's arguments with specific errors.
struct CommandArguments {
    let request: ControlRequest

    func allow(_ names: Set<String>) throws(ControlError) {
        for (key, _) in request.arguments.members where !names.contains(key) {
            let expected = names.isEmpty ? "no arguments" : "only " + names.sorted().map { "\"\($0)\"" }.joined(separator: ", ")
            throw ControlError(.invalidArgument, "\(request.command) takes \(expected), got \"\(key)\"")
        }
    }

    func string(_ name: String) throws(ControlError) -> String {
        guard let value = request.arguments[name] else {
            throw ControlError(.invalidArgument, "\(request.command) needs \"\(name)\"")
        }
        guard let text = value.stringValue else {
            throw ControlError(.invalidArgument, "\"\(name)\" must be a string, got \(value.typeName)")
        }
        return text
    }

    func count(_ name: String) throws(ControlError) -> UInt32 {
        guard let value = request.arguments[name] else {
            throw ControlError(.invalidArgument, "\(request.command) needs \"\(name)\" (a message count)")
        }
        guard let number = value.integerValue, let count = UInt32(exactly: number) else {
            throw ControlError(.invalidArgument, "\"\(name)\" must be a whole number 0...\(UInt32.max), got \(value.encoded.prefix(40))")
        }
        return count
    }

    func bool(_ name: String) throws(ControlError) -> Bool? {
        guard let value = request.arguments[name] else { return nil }
        guard let flag = value.boolValue else {
            throw ControlError(.invalidArgument, "\"\(name)\" must be true or false, got \(value.typeName)")
        }
        return flag
    }

    func topics() throws(ControlError) -> Set<WatchTopic> {
        guard let value = request.arguments["topics"] else { return WatchTopic.defaults }
        let valid = WatchTopic.allCases.map(\.rawValue).joined(separator: ", ")
        guard let list = value.arrayValue, !list.isEmpty else {
            throw ControlError(.invalidArgument, "\"topics\" must be a non-empty list of: \(valid)")
        }
        var topics = Set<WatchTopic>()
        for item in list {
            guard let text = item.stringValue, let topic = WatchTopic(rawValue: text) else {
                throw ControlError(.invalidArgument, "unknown topic \(item.encoded.prefix(40)); topics: \(valid)")
            }
            topics.insert(topic)
        }
        return topics
    }

    /// A short printable label (adapter names and versions, shown by `status`): 1-64 bytes, no
    /// control, format or separator character (`InvisibleCharacter`; plain spaces are fine).
    static func label(_ text: String, _ field: String) throws(ControlError) -> String {
        if let scalar = text.unicodeScalars.first(where: { $0 != " " && InvisibleCharacter.kind(of: $0) != nil }),
           let kind = InvisibleCharacter.kind(of: scalar) {
            throw ControlError(.invalidArgument, "\"\(field)\" contains \(InvisibleCharacter(scalar: scalar, kind: kind)): "
                + "\"\(InvisibleCharacter.escaped(text, limit: 64))\"")
        }
        guard !text.isEmpty, text.utf8.count <= 64 else {
            throw ControlError(.invalidArgument, "\"\(field)\" must be 1-64 printable characters, got \"\(InvisibleCharacter.escaped(text, limit: 64))\"")
        }
        return text
    }
}
