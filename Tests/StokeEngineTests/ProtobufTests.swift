import Testing
@testable import StokeEngine
