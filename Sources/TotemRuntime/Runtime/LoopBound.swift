// A reference to loop-confined state that may be carried across threads but only dereferenced on
// its event loop. Owns nothing but the reference.

import Totem

/// A reference to an object confined to `eventLoop`, which may cross threads (it is `Sendable`)
/// but may only be used on the loop thread.
///
/// Other threads hold it to send work to the object: `loop.execute { bound.value.doSomething() }`.
public struct LoopBound<Value: AnyObject>: @unchecked Sendable {
    // Why `@unchecked Sendable` is safe: `storage` is read only through `value`, which traps
    // unless called on `eventLoop`'s thread, so the object is only ever touched by that one
    // thread. Moving the reference itself between threads is safe (reference counting is atomic).
    public let eventLoop: EventLoop
    private let storage: Value

    /// Wraps `value`; must be called on the loop thread.
    public init(_ value: Value, eventLoop: EventLoop) {
        eventLoop.preconditionInEventLoop()
        self.eventLoop = eventLoop
        storage = value
    }

    /// The object; loop thread only.
    public var value: Value {
        eventLoop.preconditionInEventLoop()
        return storage
    }
}
