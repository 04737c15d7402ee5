// The control library's messages: typed commands encode to the documented request lines, and
// lines from the daemon decode to responses and typed events, with clear errors for anything else.

import DevclusterControl
import Testing

@Suite("Control messages")
struct ControlMessagesTests {
    private func line(_ command: some ControlCommand, id: Int64 = 1) -> String {
        ControlRequest(id: .integer(id), command).json.encoded
    }

    @Test func typedCommandsEncodeToTheDocumentedLines() {
        #expect(line(ControlCommands.hello) == #"{"id":1,"cmd":"hello"}"#)
        #expect(line(ControlCommands.DevstateSet(device: "Custom:a", state: "INUSE"), id: 7)
            == #"{"id":7,"cmd":"devstate_set","args":{"device":"Custom:a","state":"INUSE"}}"#)
        #expect(line(ControlCommands.Device.get("Custom:a")) == #"{"id":1,"cmd":"devstate_get","args":{"device":"Custom:a"}}"#)
        #expect(line(ControlCommands.Device.clear("Custom:a")) == #"{"id":1,"cmd":"devstate_clear","args":{"device":"Custom:a"}}"#)
        #expect(line(ControlCommands.MWISet(mailbox: "1234@default", new: 2, old: 5))
            == #"{"id":1,"cmd":"mwi_set","args":{"mailbox":"1234@default","new":2,"old":5}}"#)
        #expect(line(ControlCommands.Watch(topics: ["device", "mwi"], snapshot: true))
            == #"{"id":1,"cmd":"subscribe","args":{"topics":["device","mwi"],"snapshot":true}}"#)
        #expect(line(ControlCommands.Watch()) == #"{"id":1,"cmd":"subscribe"}"#)
        #expect(line(ControlCommands.EventPublish(channel: "alerts", type: "alarm", attributes: [("site", "paris")],
                                                  payload: "say \"hi\"", retentionMilliseconds: 60_000))
            == #"{"id":1,"cmd":"event_publish","args":{"channel":"alerts","type":"alarm","attributes":{"site":"paris"},"payload":"say \"hi\"","retention_ms":60000}}"#)
        #expect(line(ControlCommands.EventPublish(channel: "alerts", type: "alarm", payload: .bytes([0x00, 0xFF, 0x01])))
            == #"{"id":1,"cmd":"event_publish","args":{"channel":"alerts","type":"alarm","payload_base64":"AP8B"}}"#)
        #expect(line(ControlCommands.EventSubscribe(channel: "alerts", types: ["alarm"]))
            == #"{"id":1,"cmd":"event_subscribe","args":{"channel":"alerts","types":["alarm"]}}"#)
        #expect(line(ControlCommands.AdapterRegister(entityID: "02:00:00:00:00:01", name: "pbx1"))
            == #"{"id":1,"cmd":"adapter_register","args":{"entity_id":"02:00:00:00:00:01","name":"pbx1"}}"#)
    }

    @Test func encodedRequestsReadBackAsTheSameRequest() throws {
        let request = ControlRequest(id: .integer(3), ControlCommands.MWISet(mailbox: "1@x", new: 1, old: 0))
        var bytes: [UInt8] = []
        request.json.encode(into: &bytes)
        #expect(try ControlRequest.decode(line: bytes) == request)
    }

    @Test func responsesDecodeWithTheirIdAndOutcome() throws {
        let success = try ControlMessage.decode(line: Array(#"{"id":4,"ok":true,"result":{"x":1}}"#.utf8))
        #expect(success == .response(id: .integer(4), outcome: .success(["x": 1])))
        let failure = try ControlMessage.decode(line: Array(#"{"id":null,"ok":false,"error":{"code":"idle_timeout","message":"bye"}}"#.utf8))
        #expect(failure == .response(id: .null, outcome: .failure(ControlError(.idleTimeout, "bye"))))
        // An error code from a newer daemon is kept in the message.
        let newer = try ControlMessage.decode(line: Array(#"{"id":1,"ok":false,"error":{"code":"shiny","message":"m"}}"#.utf8))
        #expect(newer == .response(id: .integer(1), outcome: .failure(ControlError(.internal, "shiny: m"))))
    }

    @Test func linesThatAreNeitherAreClearErrors() {
        for text in ["", "not json", "[1,2]", #"{"id":1}"#, #"{"id":1,"ok":false,"error":{"code":"x"}}"#, #"{"event":"device"}"#] {
            #expect(throws: ControlError.self, "\(text)") { try ControlMessage.decode(line: Array(text.utf8)) }
            do {
                _ = try ControlMessage.decode(line: Array(text.utf8))
            } catch {
                #expect(error.code == .parseError, "\(text): \(error)")
            }
        }
    }

    @Test func pushedEventsAreTypedInOnePlace() throws {
        func event(_ text: String) throws -> ControlEvent {
            guard case .event(let event) = try ControlMessage.decode(line: Array(text.utf8)) else {
                throw ControlError(.parseError, "not an event: \(text)")
            }
            return event
        }
        #expect(try event(#"{"event":"device","data":{"device":"Custom:a","state":"INUSE","previous":"NOT_INUSE"}}"#).typed
            == .device(device: "Custom:a", state: "INUSE", previous: "NOT_INUSE"))
        #expect(try event(#"{"event":"extension","data":{"exten":"1234","context":"c","devices":"Custom:a","state":"InUse","previous":"Idle"}}"#).typed
            == .extension(exten: "1234", context: "c", devices: "Custom:a", state: "InUse", previous: "Idle"))
        #expect(try event(#"{"event":"mwi","data":{"mailbox":"1234","context":"default","new":2,"old":5,"waiting":true}}"#).typed
            == .mwi(mailbox: "1234", context: "default", new: 2, old: 5))
        let view = try event(#"{"event":"membership","data":{"change":"view","members":[1,2]}}"#)
        #expect(view.typed == .membership(change: "view", data: ["change": "view", "members": [1, 2]]))
        #expect(try event(#"{"event":"server_device","data":{"device":"Custom:a","entity_id":"02:00:00:00:00:02","nodeid":2,"name":"s2","state":null}}"#).typed
            == .serverDevice(device: "Custom:a", entityID: "02:00:00:00:00:02", nodeID: 2, state: nil))
        #expect(try event(#"{"event":"server_left","data":{"entity_id":"02:00:00:00:00:02","nodeid":2,"name":"s2"}}"#).typed
            == .serverLeft(entityID: "02:00:00:00:00:02", nodeID: 2))
        #expect(try event(#"{"event":"channel_event","data":{"subscription":7,"channel":"alerts","type":"alarm","payload_base64":"AP8B","replayed":true}}"#).typed
            == .channel(subscription: 7, channel: "alerts", type: "alarm", payload: nil, replayed: true))
        // Unknown events and incomplete data stay untyped, never a crash.
        #expect(try event(#"{"event":"future","data":{}}"#).typed == nil)
        #expect(try event(#"{"event":"device","data":{"device":"Custom:a"}}"#).typed == nil)
        // The event's line is the daemon's.
        let text = #"{"event":"device","data":{"device":"Custom:a","state":"INUSE","previous":"NOT_INUSE"}}"#
        #expect(try event(text).json.encoded == text)
    }
}
