from setuptools import setup

setup(
    name="txinferno",
    version="0.1.0",
    description="Twisted client and embedded server for Inferno OS's service registry",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11",
    packages=[
        "txinferno",
        "txinferno.wire",
        "txinferno.client",
        "txinferno.server",
        "txinferno.testing",
        "txinferno.web",
        "twisted.plugins",
    ],
    package_data={"txinferno": ["py.typed"], "txinferno.web": ["static/*.js", "static/*.css"]},
    install_requires=["twisted>=23.8", "zope.interface>=5", "prometheus_client>=0.17"],
    extras_require={
        "tls": ["twisted[tls]"],
        "test": [
            "twisted[tls]",
            "treq>=22",
            "pytest>=7",
            "pytest-twisted>=1.14",
            "pytest-timeout>=2",
            "pytest-xdist>=3",
            "hypothesis>=6",
            "sphinx>=7",
            "myst-parser>=2",
            "pydoctor>=24",
            # The linter, formatter and type checker are pinned: a new version
            # may format or judge the same code differently.
            "ruff==0.17.6",
            "mypy==2.4.1",
            "mypy-zope==1.0.17",
            "selenium>=4.10",
        ],
    },
    entry_points={"console_scripts": ["regquery = txinferno.regquery:main"]},
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3",
    ],
)
