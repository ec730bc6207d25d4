"""cvloss: which loss should I use, and what does it buy me?"""
__version__ = "0.1.0"
