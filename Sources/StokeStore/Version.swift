enum StoreVersion { static let format = 1 }
