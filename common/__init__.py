"""The ground floor every stage stands on, torch-free: errors, the home folder, typed configs and settings, the tensor
layout, the model-repository layout, the CLI conventions and the one place that makes connections.

It imports nothing from training, export, serving, clients or deploy (a test in the suite holds it to that).
"""
