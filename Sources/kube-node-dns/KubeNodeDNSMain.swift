import FoundationEssentials
import KubeNodeDNS

/// The executable: the controller's command line, run until SIGTERM.
@main
struct KubeNodeDNSMain {
    static func main() async {
        await ControllerCommand.run(arguments: Array(CommandLine.arguments.dropFirst()))
    }
}
