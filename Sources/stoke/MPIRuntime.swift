import Foundation

/// Open MPI, loaded at run time with dlopen when the process runs under Open MPI's launcher
/// (`OMPI_COMM_WORLD_SIZE` set), so Stoke builds without MPI headers and runs without a launcher.
/// Used only for collectives: a barrier and gathering per-rank numbers. Open MPI's handles
/// (`MPI_COMM_WORLD`, `MPI_DOUBLE`) are the addresses of its exported globals `ompi_mpi_comm_world` and
/// `ompi_mpi_double`; other MPIs (MPICH) are not loaded (their rank still shards through `PMI_RANK`).
final class MPIRuntime: Sendable {
    private typealias InitFunction = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Int32
    private typealias CommIntFunction = @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>?) -> Int32
    private typealias CommFunction = @convention(c) (OpaquePointer?) -> Int32
    private typealias AllgatherFunction = @convention(c) (
        UnsafeRawPointer?, Int32, OpaquePointer?, UnsafeMutableRawPointer?, Int32, OpaquePointer?, OpaquePointer?
    ) -> Int32
    private typealias FinalizeFunction = @convention(c) () -> Int32

    /// This process's rank and the number of ranks in `MPI_COMM_WORLD`.
    let rank: Int
    let size: Int
    // Immutable after init: C function pointers and Open MPI's global handles (addresses, never freed).
    nonisolated(unsafe) private let world: OpaquePointer
    nonisolated(unsafe) private let double: OpaquePointer
    nonisolated(unsafe) private let barrierFunction: CommFunction
    nonisolated(unsafe) private let allgatherFunction: AllgatherFunction
    nonisolated(unsafe) private let finalizeFunction: FinalizeFunction

    /// Why Open MPI could not be loaded, for the message of a command that needs it.
    struct LoadError: Error, CustomStringConvertible {
        var description: String
    }

    /// The runtime for this process: nil when not under Open MPI's launcher; an error when under it but
    /// libmpi cannot be loaded. MPI_Init runs once, on first use.
    static let shared: Result<MPIRuntime, LoadError>? = {
        guard ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] != nil else { return nil }
        do { return .success(try MPIRuntime()) } catch let error as LoadError { return .failure(error) } catch {
            return .failure(LoadError(description: "\(error)"))
        }
    }()

    private init() throws {
        // RTLD_GLOBAL: Open MPI's plugins resolve libmpi's symbols from the global namespace.
        var handle: UnsafeMutableRawPointer?
        for name in ["libmpi.so.40", "libmpi.so"] {
            handle = unsafe dlopen(name, RTLD_NOW | RTLD_GLOBAL)
            if unsafe handle != nil { break }
        }
        guard let handle = unsafe handle else {
            throw LoadError(description: "running under Open MPI (OMPI_COMM_WORLD_SIZE is set) but libmpi.so.40 cannot be loaded: \(unsafe String(cString: dlerror())) (install openmpi-bin / libopenmpi3)")
        }
        func symbol(_ name: String) throws -> UnsafeMutableRawPointer {
            guard let address = unsafe dlsym(handle, name) else {
                throw LoadError(description: "libmpi has no symbol \(name): not Open MPI?")
            }
            return unsafe address
        }
        let initialize = unsafe unsafeBitCast(try symbol("MPI_Init"), to: InitFunction.self)
        let commRank = unsafe unsafeBitCast(try symbol("MPI_Comm_rank"), to: CommIntFunction.self)
        let commSize = unsafe unsafeBitCast(try symbol("MPI_Comm_size"), to: CommIntFunction.self)
        unsafe barrierFunction = unsafe unsafeBitCast(try symbol("MPI_Barrier"), to: CommFunction.self)
        unsafe allgatherFunction = unsafe unsafeBitCast(try symbol("MPI_Allgather"), to: AllgatherFunction.self)
        unsafe finalizeFunction = unsafe unsafeBitCast(try symbol("MPI_Finalize"), to: FinalizeFunction.self)
        unsafe world = OpaquePointer(try symbol("ompi_mpi_comm_world"))
        unsafe double = OpaquePointer(try symbol("ompi_mpi_double"))
        guard unsafe initialize(nil, nil) == 0 else { throw LoadError(description: "MPI_Init failed") }
        var value: Int32 = 0
        _ = unsafe commRank(world, &value)
        rank = Int(value)
        _ = unsafe commSize(world, &value)
        size = Int(value)
    }

    /// Waits until every rank calls it.
    func barrier() {
        _ = unsafe barrierFunction(world)
    }

    /// Every rank's `values` (the same count on each), indexed by rank; a barrier as well.
    func allGather(_ values: [Double]) -> [[Double]] {
        var all = [Double](repeating: 0, count: values.count * size)
        unsafe values.withUnsafeBytes { send in
            unsafe all.withUnsafeMutableBytes { receive in
                _ = unsafe allgatherFunction(
                    send.baseAddress, Int32(values.count), double, receive.baseAddress, Int32(values.count), double, world)
            }
        }
        return (0..<size).map { Array(all[($0 * values.count)..<(($0 + 1) * values.count)]) }
    }

    /// Ends MPI for this process (before exit, as Open MPI's launcher expects).
    func finalize() {
        _ = unsafe finalizeFunction()
    }
}
