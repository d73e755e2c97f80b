"""The built-in network families by name, known without importing torch.

``ferkit models`` lists them: the registry (``ferkit.models.nets``) learns the names by
importing every family, which imports torch (1-2 s), too slow for a listing. The test suite
keeps this tuple equal to the registry's ``list_models()``.
"""

NETWORKS = ("cnn10", "convnet", "fernet", "resnet18", "resnet50", "seedcnn")
