"""The only modules that import TensorFlow and Keras.

They run in worker processes (training workers, the inference service, Ray
tasks) and in the command line, never in the web server: Streamlit clears the
Keras session after every script run when Keras is loaded, which pauses the
whole process and throws away compiled kernels.
"""
