// The Kubernetes API client; see KubeClient.swift.
