// The Kubernetes API client (kubeconfig / in-cluster auth, list + watch).
