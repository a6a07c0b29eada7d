"""Fashion-MNIST Studio: the library behind the Streamlit app and the command line."""

__version__ = "0.1.0"
