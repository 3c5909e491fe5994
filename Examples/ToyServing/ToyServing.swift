import ArgumentParser
import Foundation
import Hummingbird
import ModelServing
import RegistryClient

/// A toy inference service that serves a model through `ModelRuntime`, to watch a rollout happen on one machine.
///
/// The "model" is a text file, `model.txt`, in the version's directory: its prediction for a user is that text with
/// the user's name. `GET /predict?user=NAME` routes by the user, so a user keeps their version at a given weight;
/// `GET /status` shows what the runtime serves and keeps loaded. A model whose text contains "FAIL" fails every
/// request, which lets the tour show an automatic abort.
@main
struct ToyServing: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "toy-serving", abstract: "A toy model server that follows a registry stage.")

    @Option(help: "The registry (default: $REGISTRY_URL or http://127.0.0.1:8080).") var url: String?
    @Option(help: "A reader token (default: $REGISTRY_TOKEN).") var token: String?
    @Option var model = "toy"
    @Option var stage = "production"
    @Option(help: "Where versions are downloaded.") var cache = ".toy-serving-cache"
    @Option var port = 9090
    @Option(help: "This instance's name in rollout reports.") var instance = "toy-1"

    struct Weights: Sendable {
        let text: String
    }

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let client = RegistryClient(
            baseURL: url ?? environment["REGISTRY_URL"] ?? "http://127.0.0.1:8080",
            token: token ?? environment["REGISTRY_TOKEN"])
        let runtime = try await ModelRuntime<Weights>.load(
            client: client,
            configuration: RuntimeConfiguration(
                model: model, stage: stage, cacheDirectory: URL(fileURLWithPath: cache), instance: instance,
                reportInterval: .seconds(2)),
            loader: { directory, _ in
                Weights(text: try String(contentsOf: directory.appendingPathComponent("model.txt"), encoding: .utf8))
            })
        print("serving \(model)@\(stage) version \(runtime.router.state.stable.version) on http://127.0.0.1:\(port)")

        let router = Router()
        router.get("/predict") { request, _ -> Response in
            let user = request.uri.queryParameters.get("user") ?? "anonymous"
            let slot = runtime.route(user)
            let text = slot.model.text.trimmingCharacters(in: .whitespacesAndNewlines)
            let failed = text.contains("FAIL")
            slot.record(failed: failed)
            let body = #"{"user":"\#(user)","version":\#(slot.version),"output":"\#(text) for \#(user)"}"# + "\n"
            return Response(
                status: failed ? .internalServerError : .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        router.get("/status") { _, _ -> Response in
            let status = await runtime.status()
            let body =
                #"{"stable":\#(status.stable),"candidate":\#(status.candidate.map(String.init) ?? "null"),"#
                + #""weight":\#(status.weight),"loaded":\#(status.loaded)}"# + "\n"
            return Response(
                status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        // The runtime follows the stage for as long as the server runs, and both stop on SIGTERM or SIGINT.
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), services: [runtime])
        try await app.runService()
    }
}
