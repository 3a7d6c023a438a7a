"""The networks: the CIFAR ResNets, one or K packed (`dm.models.resnet`), and
the small MLPs of the digits and IMDB experiments (`dm.models.mlp`)."""
