print("stoke")
