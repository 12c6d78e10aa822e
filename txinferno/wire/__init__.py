"""
registry(4) itself, without I/O, shared by the client and the server: words
and quoting, the rules of names and attributes, registry descriptions, dial
addresses and attrdb(6) files.
"""
