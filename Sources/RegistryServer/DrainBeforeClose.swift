import NIOCore

/// Holds a connection's close until the response bytes already written to it have reached the socket.
///
/// On graceful shutdown Hummingbird (2.28) quiesces each connection: it closes it once the last response is written
/// (`writeAndFlush` of the end, then `close`). A close fails every write NIO has not yet handed to the kernel, so a
/// client reading slowly lost the tail of its download — the end of a multi-gigabyte blob, cut off by a routine
/// restart. This handler sits before Hummingbird's connection state handler, counts the writes in flight and defers a
/// full close until they complete (or `limit` passes, for a peer that stopped reading).
final class DrainBeforeClose: ChannelOutboundHandler, RemovableChannelHandler {
    // Writes pass through untouched (they are Hummingbird's HTTP response parts); only their completion is watched.
    typealias OutboundIn = Any
    typealias OutboundOut = Any

    /// How long a close waits for a peer to read what was written.
    let limit: TimeAmount
    private var inFlight = 0
    private var deferredClose: (mode: CloseMode, promise: EventLoopPromise<Void>?)?
    private var deadline: Scheduled<Void>?

    init(limit: TimeAmount = .seconds(30)) {
        self.limit = limit
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        inFlight += 1
        let written = context.eventLoop.makePromise(of: Void.self)
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        written.futureResult.whenComplete { _ in
            let (handler, context) = loopBound.value
            handler.inFlight -= 1
            if handler.inFlight == 0 { handler.closeNow(context) }
        }
        written.futureResult.cascade(to: promise)
        context.write(data, promise: written)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard mode == .all, inFlight > 0, deferredClose == nil else {
            context.close(mode: mode, promise: promise)
            return
        }
        deferredClose = (mode, promise)
        context.flush()
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: limit) {
            let (handler, context) = loopBound.value
            handler.closeNow(context)
        }
    }

    /// Runs the deferred close, if there is one.
    private func closeNow(_ context: ChannelHandlerContext) {
        guard let (mode, promise) = deferredClose else { return }
        deferredClose = nil
        deadline?.cancel()
        deadline = nil
        context.close(mode: mode, promise: promise)
    }
}
