enum EngineVersion { static let v = 1 }
