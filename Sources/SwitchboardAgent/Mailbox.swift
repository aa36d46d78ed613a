import Synchronization

/// An unbounded single-consumer queue whose `next()` may be cancelled without losing an element.
///
/// `AsyncStream` cannot do this: cancelling a task that waits in its iterator ends the whole stream. The
/// controller races `next()` against a timer and cancels the loser, so it needs a queue that survives.
final class Mailbox<Element: Sendable>: Sendable {
    private struct State {
        var buffer: [Element] = []
        var head = 0
        var waiter: CheckedContinuation<Element?, Never>?

        mutating func popFirst() -> Element? {
            guard head < buffer.count else { return nil }
            let element = buffer[head]
            head += 1
            if head == buffer.count {
                buffer.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 1024, head * 2 >= buffer.count {
                buffer.removeFirst(head)
                head = 0
            }
            return element
        }
    }

    private let state = Mutex(State())

    init() {}

    func send(_ element: Element) {
        let waiter: CheckedContinuation<Element?, Never>? = state.withLock { state in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.buffer.append(element)
            return nil
        }
        waiter?.resume(returning: element)
    }

    /// The next element without waiting, if there is one.
    func tryNext() -> Element? {
        state.withLock { $0.popFirst() }
    }

    /// The next element; nil if the calling task is cancelled (no element is lost then). One consumer.
    func next() async -> Element? {
        if let element = tryNext() { return element }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Element?, Never>) in
                let immediate: Element?? = state.withLock { state in
                    if let element = state.popFirst() { return .some(element) }
                    if Task.isCancelled { return .some(nil) }
                    precondition(state.waiter == nil, "Mailbox has a single consumer")
                    state.waiter = continuation
                    return .none
                }
                if case .some(let element) = immediate { continuation.resume(returning: element) }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(returning: nil)
        }
    }
}
