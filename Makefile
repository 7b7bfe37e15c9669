# Small targets around the scripts (the scripts are the truth; see README).
#   make images                     OCI archives, SBOMs, the plugin archive: dist/images/
#   make pin REGISTRY=host/path     manifests/kustomization.yaml names each image by digest
#   make test                       the test command (bash tests/run-all.sh)
OUT ?= dist/images

.PHONY: images pin test

images:
	bash images/build.sh $(OUT)

pin: $(OUT)/images.txt
	@test -n "$(REGISTRY)" || { echo "make pin REGISTRY=host/path (the private registry)"; exit 2; }
	bash images/pin.sh $(REGISTRY) $(OUT)/images.txt

$(OUT)/images.txt:
	bash images/build.sh $(OUT)

test:
	bash tests/run-all.sh
