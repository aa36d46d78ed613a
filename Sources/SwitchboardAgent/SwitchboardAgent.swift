// The node agent; see Controller.swift.
